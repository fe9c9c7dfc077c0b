#!/usr/bin/env bash
# The teaching examples, built and run: bash examples/demo.sh
#
# Installs what the build needs (.ci/deps.sh), builds the library and the
# examples into build-demo/, runs each example at its full size, and ends
# with a summary table. About half a minute on 2 cores once built.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-demo"
cd "$root"

bash .ci/deps.sh
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dtests=false -Dbench=false --buildtype=release >/dev/null
fi
examples=(hello_child process_tree queue_report pool_callbacks counter_race
          producer_consumer sum_primes factorize map_compare pipeline)
ninja -C "$build" $(printf 'examples/%s ' "${examples[@]}") >/dev/null

out="$build/demo"
mkdir -p "$out"
declare -A args=(
    [factorize]="--svg $out/factorize.svg"
)
# The line of each example's output that sums it up in the table.
declare -A key=(
    [hello_child]='^hello'
    [process_tree]='^processes:'
    [queue_report]='^total'
    [pool_callbacks]='^map_async: sum'
    [counter_race]='^lost updates'
    [producer_consumer]='^consumed'
    [sum_primes]='^\[2400000'
    [factorize]='^checksum'
    [map_compare]='parallel (wins|loses)'
    [pipeline]='pipelined:'
)
rows=()
failed=0
for name in "${examples[@]}"; do
    printf '\n===== %s =====\n' "$name"
    start=$(date +%s%N)
    status=ok
    # shellcheck disable=SC2086 # args hold several words on purpose
    if ! (cd "$out" && "$build/examples/$name" ${args[$name]:-}) | tee "$out/$name.txt"; then
        status=FAILED
        failed=1
    fi
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs=$(printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)))
    line=$(grep -E "${key[$name]}" "$out/$name.txt" | tail -1 | sed 's/^ *//; s/  */ /g' | cut -c1-58)
    rows+=("$(printf '%-18s %7s  %-6s %s' "$name" "$secs" "$status" "$line")")
done

printf '\n===== summary (%s CPUs) =====\n' "$(nproc)"
printf '%-18s %7s  %-6s %s\n' example seconds status "what it showed"
printf '%s\n' "${rows[@]}"
echo "chart: $out/factorize.svg    outputs: $out/"
exit $failed
