#!/bin/sh
# Installs the build into a throw-away prefix, then builds a consumer
# against it twice: with CMake's find_package(vow) and with pkg-config.
# Checks the shared library's SONAME on the way.
set -eu
build=$1
src=$2
cc=${3:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
lib=$(ls "$tmp"/prefix/lib*/libvow.so.0.* | head -1)
objdump -p "$lib" | grep -q 'SONAME *libvow.so.0' ||
  { echo "libvow has no SONAME libvow.so.0" >&2; exit 1; }
# The MPI module goes beside libvow, in vow/, where libvow looks for it.
if [ -f "$build/libvow-mpi.so" ] && [ ! -f "$(dirname "$lib")/vow/libvow-mpi.so" ]; then
  echo "libvow-mpi.so was built but not installed in $(dirname "$lib")/vow" >&2
  exit 1
fi

cmake -S "$src/tests/install" -B "$tmp/cm" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH=$(dirname "$lib") "$tmp/cm/consumer"

libdir=$(dirname "$lib")
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs vow)
LD_LIBRARY_PATH=$libdir "$tmp/pc"

# What a user finds after cmake --install: the guide and the examples'
# sources, the built examples running through their RPATH, the Python
# worker importable as vow_worker, and bash completion for every command.
prefix=$tmp/prefix
fail() { echo "install: $*" >&2; exit 1; }
for f in README.md cli.md queue.md promises.md examples/pi.c \
  examples/python/tasks.py; do
  [ -f "$prefix/share/doc/vow/$f" ] || fail "share/doc/vow/$f is missing"
done
[ -f "$prefix/share/man/man1/vow.1" ] || fail "the man page is missing"
env -u LD_LIBRARY_PATH "$libdir/vow/examples/vow-hello" /etc/hostname |
  grep -q '/etc/hostname: [0-9]* bytes' || fail "vow-hello does not run from its RPATH"
out=$(printf '{"f":"sin","a":0,"b":3.141592653589793,"n":100000}\n' |
  "$prefix/bin/vow" map "$libdir/vow/examples/integrate.so" integrate)
case $out in 2.0000*) ;; *) fail "the installed integrate plugin gives $out" ;; esac
pydir=$(ls -d "$prefix"/lib/python3*/dist-packages)
[ -f "$pydir/vow_worker.py" ] || fail "vow_worker.py is not in $pydir"
out=$(printf '3\n4\n' | PYTHONPATH=$pydir "$prefix/bin/vow" map \
  --worker "python3 -m vow_worker $prefix/share/doc/vow/examples/python/tasks.py" square)
[ "$out" = "9
16" ] || fail "python3 -m vow_worker gives \"$out\""
# The installed package as a parent: it loads the installed libvow.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
out=$(cd / && PYTHONPATH=$pydir "$py" -c 'import sys, vow
with vow.Pool(workers=1, module=sys.argv[1]) as p:
    print(p.submit("square", 6).result(timeout=60))' \
  "$prefix/share/doc/vow/examples/python/tasks.py")
[ "$out" = 36 ] || fail "the installed vow package gives \"$out\""
comp=$prefix/share/bash-completion/completions/vow
[ -f "$comp" ] || fail "bash completion is missing"
if command -v bash >/dev/null 2>&1; then
  # complete WORDS...: what completion offers for the last word.
  complete_words() {
    PATH="$prefix/bin:$PATH" bash -c '. "$1"; shift
      COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vow
      printf "%s\n" "${COMPREPLY[@]}"' sh "$comp" "$@"
  }
  complete_words vow "" | grep -qx submit || fail "completion lacks submit"
  complete_words vow pa | grep -qx parallel || fail "completion lacks parallel"
  complete_words vow run --ke | grep -qx -- --keep-order || fail "completion lacks run --keep-order"
  complete_words vow map --trace | grep -qx -- --traceback || fail "completion lacks map --traceback"
  complete_words vow submit --gr | grep -qx -- --group || fail "completion lacks submit --group"
  complete_words vow --socket /x status --js | grep -qx -- --json ||
    fail "completion lacks status --json after --socket"
fi
echo "install: ok"
