#!/usr/bin/env bash
# Composition and sync benchmarks against their peers: builds with
# optimization in its own build directory, runs corio, Go (unbuffered
# channels, GOMAXPROCS=1 and the default) and Python asyncio alternately
# ROUNDS times (default 5), and prints the median of every figure and the
# ratios, as a Markdown section.
#
#   bench/run_sync.sh [ROUNDS]
#
# The peers do the same work: a value passed back and forth between two
# tasks (goroutines, coroutines) through two queues (channels) of capacity
# one (unbuffered), timed per round trip; and an uncontended lock.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
build=${BUILD_DIR:-build-bench-sync}

if [ ! -d "$build" ]; then
    meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false >/dev/null
fi
ninja -C "$build" bench/bench_sync >/dev/null
gobin=
if command -v go >/dev/null; then
    export GOCACHE=${GOCACHE:-$PWD/$build/go-cache} GOFLAGS=-mod=mod GO111MODULE=off
    go build -o "$build/bench_chan" bench/bench_chan.go && gobin=$build/bench_chan
else
    echo "go not found: the Go peer is skipped" >&2
fi

pybench=$(mktemp --suffix=.py)
raw=$(mktemp)
trap 'rm -f "$raw" "$pybench"' EXIT
cat >"$pybench" <<'PY'
import asyncio, sys, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200000

async def pong(a, b):
    for _ in range(N):
        await b.put(await a.get())

async def main():
    a, b = asyncio.Queue(maxsize=1), asyncio.Queue(maxsize=1)
    t = asyncio.ensure_future(pong(a, b))
    await asyncio.sleep(0)
    t0 = time.perf_counter_ns()
    for i in range(N):
        await a.put(i)
        assert await b.get() == i
    t1 = time.perf_counter_ns()
    await t
    print(f"asyncio_queue_pingpong_roundtrip_ns {(t1 - t0) / N:.1f} ns")
    lock = asyncio.Lock()
    n = 5 * N
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await lock.acquire()
        lock.release()
    t1 = time.perf_counter_ns()
    print(f"asyncio_lock_uncontended_ns {(t1 - t0) / n:.1f} ns")

asyncio.run(main())
PY

for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    "$build/bench/bench_sync" all >>"$raw"
    if [ -n "$gobin" ]; then
        GOMAXPROCS=1 "$gobin" >>"$raw"
        "$gobin" >>"$raw"
    fi
    python3 "$pybench" >>"$raw"
done

PYTHONPATH=bench python3 - "$raw" "$rounds" <<'PY'
import sys
from medians import Report
r = Report(sys.argv[1])
med, ratio = r.med, r.ratio
r.figures(f"Medians of {sys.argv[2]} alternating runs:")
r.ratios("ratio (above 1 favours corio)")
gos = sorted(k for k in med if k.startswith("go_chan_pingpong_roundtrip_ns_p"))
for i, k in enumerate(gos):
    procs = k.rsplit("_p", 1)[1]
    ratio(f"Go unbuffered channel round trip (GOMAXPROCS={procs}) / corio queue round trip",
          k, "queue_pingpong_roundtrip_ns", ">= 3x" if i == 0 else "")
ratio("asyncio.Queue round trip / corio queue round trip",
      "asyncio_queue_pingpong_roundtrip_ns", "queue_pingpong_roundtrip_ns", "")
ratio("asyncio.Lock acquire+release / corio lock acquire+release",
      "asyncio_lock_uncontended_ns", "lock_uncontended_ns", "")
PY
