#!/usr/bin/env bash
# Executor benchmarks beside Python's concurrent.futures on this machine:
# builds with optimization in its own build directory, runs bench_executor,
# ../shared/python-baselines/overhead.py and factorize.py alternately ROUNDS
# times (default 3), and prints the median of every figure and the ratios,
# as a Markdown section.
#
#   bench/run_executors.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
build=${BUILD_DIR:-build-bench-exec}
pydir=${PYTHON_BASELINES:-../shared/python-baselines}
[ -d "$pydir" ] || pydir=/work/shared/python-baselines

if [ ! -d "$build" ]; then
    meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false >/dev/null
fi
ninja -C "$build" bench/bench_executor >/dev/null

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    "$build/bench/bench_executor" 100000 300 >>"$raw"
    python3 "$pydir/overhead.py" 100000 | sed 's/^/py_/' >>"$raw"
    # "serial 1 s", "thread 2 s", ...: only the serial and two-worker lines.
    python3 "$pydir/factorize.py" 300 |
        awk '$1 == "serial" || $2 == 2 { print "py_factorize_" $1 $2 "_s", $3, "s" }
             $1 == "checksum" { print "py_factorize_checksum", $2, "sum" }' >>"$raw"
done

PYTHONPATH=bench python3 - "$raw" "$rounds" "$(nproc)" <<'PY'
import sys
from medians import Report
r = Report(sys.argv[1], default_unit="tasks/s", ratio_digits=1,
           fmt=lambda x: f"{x:,.0f}" if x >= 1000 else f"{x:.3f}")
med, ratio = r.med, r.ratio
r.figures(f"Medians of {sys.argv[2]} alternating runs on {sys.argv[3]} CPUs:")
r.ratios("ratio")
ratio("thread pool submit: corio / Python", "thread_submit_per_s", "py_thread_submit_per_s", ">= 20x")
ratio("thread pool map (chunksize 1000): corio / Python map", "thread_map_chunk1000_per_s",
      "py_thread_map_per_s", ">= 20x")
ratio("process pool submit: corio / Python", "process_submit_per_s", "py_process_submit_per_s", ">= 20x")
ratio("process pool map (chunksize 1000): corio / Python", "process_map_chunk1000_per_s",
      "py_process_map_chunk1000_per_s", ">= 20x")
ratio("factorisation, 2 threads: corio serial / corio threads", "factorize_serial_s",
      "factorize_thread2_s", ">= 1.8x")
ratio("factorisation, 2 processes: corio serial / corio processes", "factorize_serial_s",
      "factorize_process2_s", ">= 1.8x")
if "cpu_parallel_speedup_2" in med:
    print(f"| the machine's own 2-thread speedup on a busy loop, same runs | {med['cpu_parallel_speedup_2']:.2f}x | (2x on idle cores) |")
ratio("factorisation, 2 threads: Python serial / Python threads", "py_factorize_serial1_s",
      "py_factorize_thread2_s", "(GIL)")
ratio("factorisation, 2 processes: Python serial / Python processes", "py_factorize_serial1_s",
      "py_factorize_process2_s", "")
ratio("factorisation serial: Python / corio", "py_factorize_serial1_s", "factorize_serial_s", "")
PY
