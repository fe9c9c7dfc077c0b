#!/usr/bin/env bash
# Network benchmarks, side by side in one run, on loopback:
#  1. echo round trips per second with 1, 50 and 1000 connections, and the
#     server's CPU time per round trip, for corio's examples/echo_server, a
#     libuv echo server (bench/uv_echo.c) and a plain epoll server
#     (bench/epoll_echo.c), all driven by the same client
#     (bench/bench_echo_client.c); with one connection also a busy-polling
#     epoll server (epoll_echo_spin), the bound for servers that answer
#     faster by never sleeping;
#  2. examples/http_server against nginx (one worker process) with wrk on a
#     small file.
# Servers run on CPU 0 and the load generators on CPU 1 (taskset), so the
# two do not compete; with two cores the client can saturate its own, which
# is why the CPU time per round trip is the fairer echo figure. Each
# configuration runs RUNS times (default 5), the servers interleaved so that
# drift hits all alike; the medians are printed as `name value unit` lines,
# each followed by a `#` comment with the runs' minimum and maximum (the
# spread says how noisy the machine was), then the ratios.
#
#   bench/run_net.sh BUILD_DIR [RUNS [SECONDS]]
#
# Environment, for focused comparisons: ECHO_CONNS (default "1 50 1000")
# picks the connection counts; EXTRA_ECHO="name=/path/server ..." adds echo
# servers that take a port and print "...:PORT" first; SKIP_HTTP=1 skips the
# nginx comparison.
set -euo pipefail
build=$(cd "${1:?usage: run_net.sh BUILD_DIR [RUNS [SECONDS]]}" && pwd)
runs=${2:-5}
secs=${3:-3}
client=$build/bench/bench_echo_client
tmp=$(mktemp -d /tmp/corio-bench-net.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ncpu=$(nproc)
srv_cpu=0
cli_cpu=$((ncpu > 1 ? 1 : 0))
pin() { taskset -c "$1" "${@:2}"; }

# Starts a server printing "...:PORT" on its first line; sets SPID, SPORT.
start() {
    local out=$tmp/server.out
    : >"$out"
    taskset -c $srv_cpu "$@" >"$out" 2>&1 &
    SPID=$!
    pids+=("$SPID")
    for _ in $(seq 100); do
        grep -qE ':[0-9]+' "$out" && break
        sleep 0.05
    done
    SPORT=$(grep -oE ':[0-9]+' "$out" | head -1 | tr -d :)
    [ -n "$SPORT" ] || { echo "server did not start: $*" >&2; cat "$out" >&2; exit 1; }
}
stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s..%s", lo, hi}'; }
conn_counts=${ECHO_CONNS:-1 50 1000}

declare -A echo_servers=(
    [corio]="$build/examples/echo_server 0"
    [epoll]="$build/bench/epoll_echo 0"
)
order=(corio epoll)
if [ -x "$build/bench/uv_echo" ]; then
    echo_servers[libuv]="$build/bench/uv_echo 0"
    order=(corio libuv epoll)
else
    echo "# libuv echo server not built (libuv1-dev missing): skipped" >&2
fi
if [ -x "$build/bench/epoll_echo_spin" ]; then
    echo_servers[epoll_spin]="$build/bench/epoll_echo_spin 0"
    order+=(epoll_spin)
fi
# The busy-polling server runs with one connection only: it is the
# reference for that case, and with more it only burns a core.
serves() { [ "$1" != epoll_spin ] || [ "$2" = 1 ]; }
for extra in ${EXTRA_ECHO:-}; do
    echo_servers[${extra%%=*}]="${extra#*=} 0"
    order+=("${extra%%=*}")
done

echo "# echo: $runs runs of ${secs}s each, 64-byte messages, server on CPU $srv_cpu, client on CPU $cli_cpu"
for conns in $conn_counts; do
    for r in $(seq "$runs"); do
        for name in "${order[@]}"; do
            serves "$name" "$conns" || continue
            # shellcheck disable=SC2086
            start ${echo_servers[$name]}
            out=$(pin $cli_cpu "$client" "$SPORT" "$conns" "$secs" 64 "$SPID")
            stop
            echo "$out" | awk -v f="$tmp/rtt.$name.$conns" '$1 == "echo_rtt_per_sec" {print $2 >> f}'
            echo "$out" | awk -v f="$tmp/cpu.$name.$conns" '$1 == "echo_server_cpu_ns" {print $2 >> f}'
        done
    done
    for name in "${order[@]}"; do
        serves "$name" "$conns" || continue
        rtt=$(median <"$tmp/rtt.$name.$conns")
        cpu=$(median <"$tmp/cpu.$name.$conns")
        echo "$rtt" >"$tmp/m.rtt.$name.$conns"
        echo "$cpu" >"$tmp/m.cpu.$name.$conns"
        echo "echo_rtt_per_sec_${name}_c$conns $rtt round-trips/s"
        echo "echo_server_cpu_${name}_c$conns $cpu ns/round-trip"
        echo "# spread ${name}_c$conns: round-trips/s $(spread <"$tmp/rtt.$name.$conns")," \
            "ns/round-trip $(spread <"$tmp/cpu.$name.$conns")"
    done
done
for conns in $conn_counts; do
    c_rtt=$(cat "$tmp/m.rtt.corio.$conns")
    c_cpu=$(cat "$tmp/m.cpu.corio.$conns")
    for name in "${order[@]}"; do
        [ "$name" = corio ] && continue
        serves "$name" "$conns" || continue
        o_rtt=$(cat "$tmp/m.rtt.$name.$conns")
        o_cpu=$(cat "$tmp/m.cpu.$name.$conns")
        awk -v a="$c_rtt" -v b="$o_rtt" -v n="$name" -v c="$conns" \
            'BEGIN {printf "echo_ratio_rtt_corio_vs_%s_c%s %.2f x\n", n, c, a / b}'
        awk -v a="$c_cpu" -v b="$o_cpu" -v n="$name" -v c="$conns" \
            'BEGIN {printf "echo_ratio_cpu_corio_vs_%s_c%s %.2f x (their CPU per round trip / ours)\n", n, c, b / a}'
    done
done

# ---- http_server against nginx --------------------------------------------------
wrk=$(command -v wrk || true)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -n "${SKIP_HTTP:-}" ] && exit 0
if [ -z "$wrk" ] || [ ! -x "$nginx" ]; then
    echo "# wrk or nginx missing: the HTTP comparison is skipped" >&2
    exit 0
fi
www=$tmp/www
mkdir -p "$www" "$tmp/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' >"$www/small.html"
chmod -R a+rX "$www"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:PORT;
        root $www;
    }
}
EOF
hconns=50
echo "# http: $runs runs of wrk -t1 -c$hconns -d${secs}s on a 1 KiB file; nginx with one worker"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq "$runs"); do
    for name in corio nginx; do
        if [ "$name" = corio ]; then
            start "$build/examples/http_server" "$www" 0
            wpid=$SPID
        else
            port=$(free_port)
            sed "s/PORT/$port/" "$tmp/nginx/nginx.conf" >"$tmp/nginx/run.conf"
            taskset -c $srv_cpu "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/run.conf" >/dev/null 2>&1 &
            SPID=$!
            pids+=("$SPID")
            SPORT=$port
            for _ in $(seq 100); do
                wpid=$(cat "/proc/$SPID/task/$SPID/children" 2>/dev/null | awk '{print $1}')
                [ -n "$wpid" ] && curl --noproxy '*' -s -o /dev/null "http://127.0.0.1:$SPORT/small.html" && break
                sleep 0.05
            done
        fi
        url="http://127.0.0.1:$SPORT/small.html"
        curl --noproxy '*' -sf -o /dev/null "$url" || { echo "$name does not serve $url" >&2; exit 1; }
        t0=$(cpu_ticks "$wpid")
        out=$(pin $cli_cpu "$wrk" -t1 -c$hconns -d"${secs}s" "$url")
        t1=$(cpu_ticks "$wpid")
        stop
        rps=$(echo "$out" | awk '$1 == "Requests/sec:" {print $2}')
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        echo "$rps" >>"$tmp/http.$name"
        awk -v t="$((t1 - t0))" -v n="$reqs" -v hz="$(getconf CLK_TCK)" \
            'BEGIN {printf "%.0f\n", t / hz * 1e9 / n}' >>"$tmp/httpcpu.$name"
        if echo "$out" | grep -q "Non-2xx"; then
            echo "$name answered errors:" >&2
            echo "$out" >&2
            exit 1
        fi
    done
done
c=$(median <"$tmp/http.corio")
n=$(median <"$tmp/http.nginx")
cc=$(median <"$tmp/httpcpu.corio")
nc=$(median <"$tmp/httpcpu.nginx")
echo "http_requests_per_sec_corio $c requests/s"
echo "http_requests_per_sec_nginx $n requests/s"
echo "http_server_cpu_corio $cc ns/request"
echo "http_server_cpu_nginx $nc ns/request"
awk -v a="$c" -v b="$n" 'BEGIN {printf "http_ratio_corio_vs_nginx %.2f x\n", a / b}'
awk -v a="$cc" -v b="$nc" 'BEGIN {printf "http_ratio_cpu_corio_vs_nginx %.2f x (their CPU per request / ours)\n", b / a}'
