#!/bin/sh
# Runs vow's benchmarks beside their peers in one invocation and prints the
# tables: the promise core against Node.js's native Promise, and the wire
# protocol against raw msgpack-c.
#   bench/run.sh [N]   N promises per shape (default 1,000,000)
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000000}
sh scripts/install-deps.sh
if ! command -v node >/dev/null 2>&1; then
  echo "installing nodejs for the side-by-side run" >&2
  apt-get update -qq && apt-get install -y -qq nodejs >/dev/null
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_BENCH=ON \
  -DVOW_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target bench-promise bench-proto >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./build-bench/bench/bench-promise "$n" >"$tmp/vow"
node --expose-gc --max-old-space-size=8192 --stack-size=65500 \
  bench/promise.js "$n" >"$tmp/node"
echo "node $(node --version), $(nproc) cores, N = $n"
awk -F'\t' '
  NR == FNR { key = $1 "/" $3; vow[key] = $4; n[$1] = $2; unit[$1] = $5
              if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 }; next }
  { node[$1 "/" $3] = $4 }
  function cell(x, u) { return u == "per_s" ? sprintf("%11.1fM", x / 1e6) : sprintf("%10.1f B", x) }
  function ratio(a, b) { return b > 0 ? sprintf("%8.2f", a / b) : "       -" }
  END {
    printf "%-18s %8s | %12s %12s %8s | %12s %12s %8s\n", "shape", "n", \
      "vow cold", "node cold", "ratio", "vow warm", "node warm", "ratio"
    for (i = 1; i <= k; i++) {
      s = order[i]; u = unit[s]; c = s "/cold"; w = s "/warm"
      printf "%-18s %8s | %12s %12s %8s | %12s %12s %8s\n", s, n[s], \
        cell(vow[c], u), cell(node[c], u), ratio(vow[c], node[c]), \
        (w in vow) ? cell(vow[w], u) : "           -", \
        (w in node) ? cell(node[w], u) : "           -", \
        (w in vow) ? ratio(vow[w], node[w]) : "       -"
    }
    print "rates are callbacks (or promises) per second; ratio = vow / node"
  }' "$tmp/vow" "$tmp/node"

echo
echo "wire protocol: encode, pipe copy and decode of one message per round"
./build-bench/bench/bench-proto >"$tmp/proto"
awk -F'\t' '
  BEGIN { printf "%-16s %14s %14s %8s\n", "shape", "vow", "msgpack-c", "ratio" }
  $4 == "MB/s" { printf "%-16s %9.0f MB/s %9.0f MB/s %8.2f\n", $1, $2, $3, $2 / $3; next }
  { printf "%-16s %8.2f Mmsg/s %7.2f Mmsg/s %8.2f\n", $1, $2 / 1e6, $3 / 1e6, $2 / $3 }
' "$tmp/proto"
