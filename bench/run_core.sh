#!/usr/bin/env bash
# Core benchmarks against their peers: builds with optimization in its own
# build directory, runs each pair alternately ROUNDS times (default 5), and
# prints the median of every figure and the ratios, as a Markdown section.
#
#   bench/run_core.sh [ROUNDS]
#
# Pairs: corio's context switch vs ucontext and boost.context; spawn+join of
# trivial tasks vs Python asyncio (../shared/python-baselines/overhead.py);
# 1,000,000 call_later timers vs libuv; resident memory per idle task.
# `bench_core touch` runs after spawn, so that the spawn round never starts
# on pages it just freed, and shows what fresh memory for the cold round's
# task records costs on this machine.
#
# Cold rounds are run twice on each side. Primed: right after `bench_core
# prime` touched fresh memory, so that the VM's host backs the guest's free
# pages (this VM reports free 8 MiB blocks back to its host about 2 s after
# they are freed, and touching them again faults in the host). Unprimed:
# after a 3 s pause, so that the host has taken the free memory back. Both
# corio and asyncio get the same treatment; the primed pair is the one the
# goal is judged on, the unprimed pair shows what the host costs.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
build=${BUILD_DIR:-build-bench-core}
pybase=${PYTHON_BASELINES:-../shared/python-baselines}
[ -f "$pybase/overhead.py" ] || pybase=/work/shared/python-baselines

if [ ! -d "$build" ]; then
    meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false >/dev/null
fi
ninja -C "$build" bench/bench_ctxswitch bench/bench_core >/dev/null
boost=$build/bench/bench_ctxswitch_boost
ninja -C "$build" bench/bench_ctxswitch_boost >/dev/null 2>&1 || boost=

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
b=$build/bench
for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    "$b/bench_ctxswitch" corio >>"$raw"
    [ -n "$boost" ] && "$boost" >>"$raw"
    "$b/bench_ctxswitch" ucontext >>"$raw"
    "$b/bench_core" prime >>"$raw"
    "$b/bench_core" spawn >>"$raw"
    "$b/bench_core" touch >>"$raw"
    if [ -f "$pybase/overhead.py" ]; then
        "$b/bench_core" prime >/dev/null
        python3 "$pybase/overhead.py" 100000 | grep '^asyncio_' | sed 's|$| 1/s|' >>"$raw"
    fi
    sleep 3
    "$b/bench_core" spawn | sed -n 's/^spawn_join_tasks_per_s/spawn_join_unprimed_tasks_per_s/p' >>"$raw"
    if [ -f "$pybase/overhead.py" ]; then
        sleep 3
        python3 "$pybase/overhead.py" 100000 |
            sed -n 's/^asyncio_tasks_per_s \(.*\)/asyncio_unprimed_tasks_per_s \1 1\/s/p' >>"$raw"
    fi
    "$b/bench_core" timers >>"$raw"
    "$b/bench_core" uv_timers >>"$raw" 2>/dev/null || true
    "$b/bench_core" idle >>"$raw"
done

PYTHONPATH=bench python3 - "$raw" "$rounds" <<'PY'
import sys
from medians import Report
r = Report(sys.argv[1])
med, ratio = r.med, r.ratio
r.figures(f"Medians of {sys.argv[2]} alternating runs:")
r.ratios("ratio (above 1 favours corio)")
ratio("swapcontext ns / corio switch ns", "ctxswitch_ucontext_ns", "ctxswitch_corio_ns", ">= 20x")
ratio("boost fcontext ns / corio switch ns", "ctxswitch_boost_fcontext_ns", "ctxswitch_corio_ns", ">= 1x")
ratio("boost callcc ns / corio switch ns", "ctxswitch_boost_callcc_ns", "ctxswitch_corio_ns", ">= 1x")
ratio("corio tasks/s / asyncio tasks/s, cold, primed", "spawn_join_tasks_per_s", "asyncio_tasks_per_s", ">= 100x")
ratio("corio tasks/s / asyncio tasks/s, warm corio", "spawn_join_warm_tasks_per_s", "asyncio_tasks_per_s", "")
ratio("corio tasks/s / asyncio tasks/s, cold, unprimed", "spawn_join_unprimed_tasks_per_s", "asyncio_unprimed_tasks_per_s", "")
ratio("corio sleep(0)/s / asyncio sleep(0)/s", "sleep0_per_s", "asyncio_sleep0_per_s", "")
ratio("libuv total / corio total, 1M timers", "timers_uv_total_ms", "timers_corio_total_ms", ">= 2x")
if "idle_task_rss_bytes" in med:
    print(f"| resident bytes per idle task | {med['idle_task_rss_bytes']:.0f} B "
          f"({med['idle_task_rss_bytes'] / 1024:.1f} KiB) | <= 8 KiB |")
PY
