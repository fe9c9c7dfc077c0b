#!/bin/sh
# Cross-builds the coroutine layer (runtime/coro.c, runtime/coro_aarch64.S)
# with tests/test_coro.c and its aarch64 register helper, statically, with
# Debian's aarch64-linux-gnu-gcc, and runs it under qemu-user at -O2 and -O0.
# Exits 77 (skip) when the cross compiler or qemu-aarch64 is missing.
#
# Usage: tests/run_aarch64.sh [SOURCE_ROOT [BUILD_DIR]]
# Needs: apt-get install gcc-aarch64-linux-gnu qemu-user
set -eu

src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
out=${2:-$src/build-aarch64}
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP: $cc not found (apt-get install gcc-aarch64-linux-gnu)"
    exit 77
fi
qemu=
for q in qemu-aarch64 qemu-aarch64-static; do
    if command -v "$q" >/dev/null 2>&1; then qemu=$q; break; fi
done
if [ -z "$qemu" ]; then
    echo "SKIP: qemu-aarch64 not found (apt-get install qemu-user)"
    exit 77
fi

mkdir -p "$out/inc"
# runtime/internal.h includes <liburing.h> for its types only. liburing's
# headers do not depend on the target, so the host's are borrowed without
# putting the rest of the host's /usr/include on the cross path.
uring_inc=$(pkg-config --variable=includedir liburing 2>/dev/null || echo /usr/include)
if [ ! -f "$uring_inc/liburing.h" ]; then
    echo "SKIP: liburing headers not found (apt-get install liburing-dev)"
    exit 77
fi
ln -sfn "$uring_inc/liburing.h" "$out/inc/liburing.h"
ln -sfn "$uring_inc/liburing" "$out/inc/liburing"

status=0
for opt in 2 0; do
    exe="$out/test_coro_aarch64_O$opt"
    "$cc" -std=gnu17 -O$opt -g -Wall -Wextra -D_GNU_SOURCE -static \
        -I"$src/include" -I"$src/runtime" -I"$src/tests" -I"$out/inc" \
        "$src/tests/test_coro.c" "$src/tests/harness.c" "$src/tests/regcheck_aarch64.S" \
        "$src/runtime/coro.c" "$src/runtime/coro_aarch64.S" \
        -o "$exe"
    echo "# $exe under $qemu"
    if ! "$qemu" "$exe"; then
        status=1
    fi
done
exit $status
