#!/bin/sh
# Builds vow and runs its main job on real work: a Monte Carlo estimate of
# pi split into tasks on worker processes, on one core and then on all of
# them, with the speedup. Arguments go to vow-pi (the sample count).
#   scripts/demo.sh             400 million samples
#   scripts/demo.sh files F...  the I/O demo instead: counts lines, words
#                               and bytes of files on one loop
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if [ "${1:-}" = files ]; then
  shift
  cmake --build build -j "$(nproc)" --target vow-demo >/dev/null
  if [ $# -eq 0 ]; then set -- /usr/include/*.h; fi
  exec ./build/examples/vow-demo "$@"
fi
cmake --build build -j "$(nproc)" --target vow-pi >/dev/null
exec ./build/examples/vow-pi "$@"
