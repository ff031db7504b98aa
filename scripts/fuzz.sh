#!/bin/sh
# Runs the protocol decoder's fuzzer for SECONDS (default 60), starting
# from the golden vectors of docs/protocol.md. The corpus it grows lives in
# a temporary directory and is thrown away; a crash or leak leaves its
# input in build-fuzz/ and fails the run.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
if [ "${VOW_DEPS_CHECKED:-0}" != 1 ]; then
  sh scripts/install-deps.sh
  dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
    grep -q "install ok installed" || VOW_DEPS_FULL=1 sh scripts/install-deps.sh
fi
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DVOW_FUZZ=ON \
  -DVOW_BUILD_TESTS=OFF -DVOW_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_decoder fuzz_seeds >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/seeds" "$work/corpus"
./build-fuzz/fuzz_seeds docs/protocol.md "$work/seeds"
cd build-fuzz
status=0
./fuzz_decoder -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" "$work/seeds" >"$work/log" 2>&1 || status=$?
grep -E "^(stat::|Done|==[0-9]+==ERROR|SUMMARY)" "$work/log" || true
if [ "$status" -ne 0 ]; then
  tail -n 60 "$work/log" >&2
  echo "fuzzer failed (exit $status); the input that broke it is in build-fuzz/" >&2
fi
exit "$status"
