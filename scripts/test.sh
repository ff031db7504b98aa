#!/bin/sh
# Builds vow and runs the whole test suite through ctest.
#   scripts/test.sh                 normal build in build/
#   VOW_SANITIZE=1 scripts/test.sh  ASan + UBSan build in build-asan/
#   VOW_QUICK=1 scripts/test.sh     long tests scaled down 100x
#   CC=clang, VOW_BUILD_DIR=DIR, VOW_CTEST_FLAGS="-L core", as named
set -eu
cd "$(dirname "$0")/.."
[ "${VOW_DEPS_CHECKED:-0}" = 1 ] || sh scripts/install-deps.sh

if [ "${VOW_SANITIZE:-0}" = 1 ]; then
  dir=${VOW_BUILD_DIR:-build-asan}
  flags="-DVOW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
else
  dir=${VOW_BUILD_DIR:-build}
  flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
fi
# shellcheck disable=SC2086
cmake -S . -B "$dir" $flags ${VOW_CMAKE_FLAGS:-} >/dev/null
cmake --build "$dir" -j "$(nproc)"
cd "$dir"
ctest --output-on-failure -j "$(nproc)" ${VOW_CTEST_FLAGS:-}
