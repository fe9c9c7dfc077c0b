#!/usr/bin/env bash
# corio installs with a pkg-config file that a program can build against, and
# works as a meson subproject. Args: source dir, build dir.
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Install into a staging prefix and build a program with pkg-config.
meson install -C "$build" --destdir "$work/dest" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
pc=$(dirname "$(find "$work/dest" -name corio.pc | head -1)")
test -n "$pc"
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$work/dest
cat > "$work/app.c" <<'C'
#include <corio.h>
#include <stdio.h>
static intptr_t m(void *a) { corio_sleep(1000); return (intptr_t)a + 1; }
int main(void) { printf("%ld\n", (long)corio_run(m, (void *)41)); return 0; }
C
libdir=$(dirname "$(find "$work/dest" -name 'libcorio.so.0' | head -1)")
cc "$work/app.c" -o "$work/app" $(pkg-config --cflags --libs corio)
out=$(LD_LIBRARY_PATH=$libdir "$work/app")
[ "$out" = 42 ] || { echo "pkg-config program printed '$out'"; exit 1; }
readelf -d "$libdir/libcorio.so.0" | grep -q 'SONAME.*libcorio.so.0' || { echo "no soname"; exit 1; }
grep -q '#define CORIO_VERSION_MAJOR' "$work/dest$prefix/include/corio/common.h"

# 2. A meson project using corio as a subproject.
mkdir -p "$work/sp/subprojects"
ln -s "$(cd "$src" && pwd)" "$work/sp/subprojects/corio"
cp "$work/app.c" "$work/sp/app.c"
cat > "$work/sp/meson.build" <<'M'
project('uses_corio', 'c', default_options : ['c_std=gnu17'])
executable('app', 'app.c', dependencies : dependency('corio', fallback : ['corio', 'corio_dep']))
M
meson setup "$work/sp/b" "$work/sp" >/dev/null
ninja -C "$work/sp/b" >/dev/null
out=$("$work/sp/b/app")
[ "$out" = 42 ] || { echo "subproject program printed '$out'"; exit 1; }
# 3. The README's C examples build against the installed library, warning
# free; the first one runs and prints what its comment says.
python3 - "$src/README.md" "$work" <<'PY'
import re, sys
blocks = re.findall(r"```c\n(.*?)```", open(sys.argv[1]).read(), re.S)
assert len(blocks) >= 2, "README lost its C examples"
open(sys.argv[2] + "/readme1.c", "w").write(blocks[0])
open(sys.argv[2] + "/readme2.c", "w").write(
    "#include <corio.h>\n" + blocks[1] + "int main(void) { return (int)corio_run(serve, NULL); }\n")
PY
for i in 1 2; do
    cc -std=gnu17 -Wall -Wextra -Werror "$work/readme$i.c" -o "$work/readme$i" \
        $(pkg-config --cflags --libs corio)
done
out=$(LD_LIBRARY_PATH=$libdir "$work/readme1")
[ "$out" = 6 ] || { echo "README example printed '$out'"; exit 1; }
echo "install, pkg-config, subproject and README examples: ok"
