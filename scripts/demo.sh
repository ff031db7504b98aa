#!/bin/sh
# Builds vow and runs its demo on real files: every header in /usr/include
# unless files are given.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target vow-demo >/dev/null
if [ $# -eq 0 ]; then
  exec ./build/examples/vow-demo /usr/include/*.h
fi
exec ./build/examples/vow-demo "$@"
