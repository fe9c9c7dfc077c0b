#!/usr/bin/env bash
# Builds and runs the whole suite: a -Werror build, an ASan+UBSan build of
# everything, and a ThreadSanitizer build of the executors, the core, the
# composition and the network tests.
# Ends with the line "N passed, N failed", counted from meson's test logs.
set -uo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

status=0
logs=()
run_suite() { # name, meson test arguments, setup options...
    local dir=$1 testargs=$2; shift 2
    rm -rf "$dir"
    if ! meson setup "$dir" -Dwerror=true "$@" >"$dir.setup.log" 2>&1; then
        cat "$dir.setup.log"; status=1; return
    fi
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        tail -50 "$dir.build.log"; status=1; return
    fi
    # shellcheck disable=SC2086
    meson test -C "$dir" --print-errorlogs --num-processes 2 $testargs || status=1
    logs+=("$dir/meson-logs/testlog.json")
}

run_suite build-test "" -Dbuildtype=debugoptimized -Dbench=false
run_suite build-asan "--no-suite slow" -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false
run_suite build-tsan "--suite executors --suite core --suite sync --suite net" \
    -Db_sanitize=thread -Db_lundef=false -Dbench=false -Dexamples=false

python3 - "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
PY
exit $status
