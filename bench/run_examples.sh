#!/usr/bin/env bash
# The teaching examples beside their Python originals: bash bench/run_examples.sh
#
# Builds the examples (release) into build-bench-examples/, then runs every
# example and its Python original alternately, REPEATS times (default 5),
# on the same machine in the same run, and writes the medians into the
# "Examples" section of BENCHMARKS.md (the other sections are left alone).
#
# The Python originals: the project's baselines (../shared/python-baselines,
# or PY_BASELINES) for factorize, sum_primes, map_compare and pipeline, and
# examples/python/ for the classic programs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench-examples"
repeats="${REPEATS:-5}"
baselines="${PY_BASELINES:-$root/../shared/python-baselines}"
[ -f "$baselines/factorize.py" ] || baselines="$root/examples/python"
cd "$root"

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dtests=false -Dbench=false --buildtype=release >/dev/null
fi
examples=(factorize sum_primes map_compare pipeline hello_child process_tree queue_report
          pool_callbacks counter_race producer_consumer)
ninja -C "$build" $(printf 'examples/%s ' "${examples[@]}") >/dev/null

# The Python original of each example, and the arguments both sides get.
declare -A py=(
    [factorize]="$baselines/factorize.py" [sum_primes]="$baselines/sum_primes.py"
    [map_compare]="$baselines/map_compare.py" [pipeline]="$baselines/pipeline.py"
)
declare -A c_args=([factorize]="--svg none" [pipeline]="--form classic")
out="$build/runs"
rm -rf "$out"
mkdir -p "$out"

# Runs one side once: its output to $out/<name>.<side>.<run>, the wall time
# (ms) to $out/<name>.<side>.<run>.ms.
run_one() {
    local name=$1 side=$2 r=$3 start
    local file="$out/$name.$side.$r"
    start=$(date +%s%N)
    if [ "$side" = c ]; then
        # shellcheck disable=SC2086 # several words on purpose
        (cd "$out" && "$build/examples/$name" ${c_args[$name]:-}) >"$file"
    else
        python3 "${py[$name]:-$root/examples/python/$name.py}" >"$file"
    fi
    echo $(( ($(date +%s%N) - start) / 1000000 )) >"$file.ms"
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq 1 "$repeats"); do
    for name in "${examples[@]}"; do
        # Alternate which side goes first, so neither always runs on a
        # machine the other has just warmed (or heated).
        if [ $((r % 2)) -eq 1 ]; then
            run_one "$name" c "$r"; run_one "$name" py "$r"
        else
            run_one "$name" py "$r"; run_one "$name" c "$r"
        fi
    done
    echo "run $r of $repeats done" >&2
done

load="$load_before before, $(cut -d' ' -f1 /proc/loadavg) after"
python3 - "$out" "$repeats" "$root/BENCHMARKS.md" "$(nproc)" "$load" "${examples[@]}" <<'EOF'
import os, re, statistics, sys, subprocess

out, repeats, md, cpus, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
names = sys.argv[6:]

def read(name, side, r):
    with open(os.path.join(out, "%s.%s.%d" % (name, side, r))) as f:
        return f.read()

def wall(name, side, r):
    with open(os.path.join(out, "%s.%s.%d.ms" % (name, side, r))) as f:
        return int(f.read()) / 1000

# Per example: (figure, C pattern, Python pattern); each pattern's last
# group is seconds.
FIGURES = {
    "factorize": [("serial", r"^serial\s+1\s+([\d.]+)", r"^serial 1 ([\d.]+)")] + [
        ("%s %d" % (py, k), r"^%s\s+%d\s+([\d.]+)" % (c, k), r"^%s %d ([\d.]+)" % (py, k))
        for c, py in (("threads", "thread"), ("processes", "process")) for k in (2, 4, 8)],
    "sum_primes": [("serial", r"^serial\s+1\s+([\d.]+)", r"^serial ([\d.]+)"),
                   ("process pool, 2 workers", r"^process\s+2\s+([\d.]+)",
                    r"^process2 ([\d.]+)")],
    "map_compare": [("sequential map (square)", r"^square\s+sequential\s+-\s+([\d.]+)",
                     r"^sequential ([\d.]+)"),
                    ("process pool map, 2 workers", r"^square\s+processes\s+\d+\s+([\d.]+)",
                     r"^pool2 ([\d.]+)")],
    "pipeline": [("3 process pools, callbacks", r"items in ([\d.]+) s",
                  r"^pipeline \d+ ([\d.]+)")],
}

def figure(text, pat):
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else None

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if len(xs) == len(range(repeats)) else None

def fmt(x):
    return "n/a" if x is None else ("%.3f" % x)

rows = []
for name in names:
    runs = range(1, repeats + 1)
    # The four workloads' C programs run more modes than their originals,
    # so only their common figures compare; the classics compare wall time.
    figs = FIGURES.get(name) or [("whole program (wall)", None, None)]
    for label, cpat, ppat in figs:
        if cpat is None:
            c = med([wall(name, "c", r) for r in runs])
            p = med([wall(name, "py", r) for r in runs])
        else:
            c = med([figure(read(name, "c", r), cpat) for r in runs])
            p = med([figure(read(name, "py", r), ppat) for r in runs])
        ratio = "%.1fx" % (p / c) if c and p else "n/a"
        rows.append("| %s | %s | %s | %s | %s |" % (name, label, fmt(c), fmt(p), ratio))

try:
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    cpu = ""
pyver = subprocess.run(["python3", "--version"], capture_output=True, text=True).stdout.strip()
section = """## Examples

The teaching examples (`examples/`) beside their Python originals, run alternately on the
same machine in the same run by `bash bench/run_examples.sh`: medians of %d runs, in seconds.
%s CPU(s), %s, %s; load average %s (a load above the CPU count means
other programs shared the machine, which flattens every parallel speed-up on both sides).
Python/C above 1 means C is faster.

Each figure is what both programs print for the same step (pool start-up is inside the
timing where the Python original includes it: factorize's threads and processes, sum_primes'
pools; the map and pipeline pools are started before the clock, on both sides). The
classic programs are compared by wall time only; theirs is mostly process start-up.

| example | figure | C | Python | Python/C |
| --- | --- | --- | --- | --- |
%s
""" % (repeats, cpus, cpu or "unknown CPU", pyver, load, "\n".join(rows))

text = open(md).read() if os.path.exists(md) else "# Benchmarks\n"
m = re.search(r"^## Examples\n.*?(?=^## |\Z)", text, re.M | re.S)
if m:
    text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(md, "w").write(text)
open(os.path.join(out, "section.md"), "w").write(section)
print(section)
EOF
