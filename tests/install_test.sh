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
