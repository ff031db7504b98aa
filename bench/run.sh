#!/bin/sh
# Runs vow's benchmarks beside their peers in one invocation and prints the
# tables: the promise core against Node.js's native Promise, the wire
# protocol against raw msgpack-c, and the worker pool against Python's
# multiprocessing and concurrent.futures (with Debian's /usr/bin/python3),
# raw socketpairs and pipes, and plain forked processes; then vow's Python
# package as the parent beside multiprocessing, concurrent.futures and
# joblib (bench/python_parent.py); then big values by shared memory, from C
# beside memcpy (bench/shm.c) and from Python beside joblib, shared_memory
# by hand and pickle (bench/python_shm.py).
#   bench/run.sh [N]   N promises, tasks and items (default 1,000,000)
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
if ! /usr/bin/python3 -c "import joblib" 2>/dev/null; then
  echo "installing python3-joblib for the side-by-side run" >&2
  apt-get update -qq && apt-get install -y -qq python3-joblib >/dev/null
fi
cmake --build build-bench -j "$(nproc)" --target vow bench-promise \
  bench-proto bench-pool bench-shm bench_plugin vow-worker >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every promise figure in a fresh process, vow and Node interleaved,
# three rounds; the median of each is printed.
rounds=3
: >"$tmp/vow"
: >"$tmp/node"
r=0
while [ $r -lt $rounds ]; do
  for shape in chain_small chain chain_4x many_promises nested_promises \
    pending_then_resolve; do
    for run in cold warm; do
      ./build-bench/bench/bench-promise $shape "$n" $run >>"$tmp/vow"
      node --expose-gc --max-old-space-size=8192 --stack-size=65500 \
        bench/promise.js $shape "$n" $run >>"$tmp/node"
    done
  done
  for shape in bytes_bare bytes_pair; do
    ./build-bench/bench/bench-promise $shape "$n" >>"$tmp/vow"
    node --expose-gc --max-old-space-size=8192 bench/promise.js $shape "$n" \
      >>"$tmp/node"
  done
  r=$((r + 1))
done
echo "node $(node --version), $(nproc) cores, N = $n; each figure the median of $rounds fresh processes"
awk -F'\t' '
  function median(list,   m, v, i, j, t) {
    m = split(list, v, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
      if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((m + 1) / 2)]
  }
  FILENAME == ARGV[1] { key = $1 "/" $3; vs[key] = vs[key] " " $4; n[$1] = $2
                        unit[$1] = $5; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 }
                        next }
  { ns[$1 "/" $3] = ns[$1 "/" $3] " " $4 }
  function cell(x, u) { return u == "per_s" ? sprintf("%11.1fM", x / 1e6) : sprintf("%10.1f B", x) }
  function ratio(a, b) { return b > 0 ? sprintf("%8.2f", a / b) : "       -" }
  END {
    printf "%-24s %8s | %12s %12s %8s | %12s %12s %8s\n", "shape", "n", \
      "vow cold", "node cold", "ratio", "vow warm", "node warm", "ratio"
    for (i = 1; i <= k; i++) {
      s = order[i]; u = unit[s]; c = s "/cold"; w = s "/warm"
      vc = median(vs[c]); nc = median(ns[c])
      if (w in vs) { vw = median(vs[w]); nw = median(ns[w]) }
      printf "%-24s %8s | %12s %12s %8s | %12s %12s %8s\n", s, n[s], \
        cell(vc, u), cell(nc, u), ratio(vc, nc), \
        (w in vs) ? cell(vw, u) : "           -", \
        (w in vs) ? cell(nw, u) : "           -", \
        (w in vs) ? ratio(vw, nw) : "       -"
    }
    print "rates are callbacks (or promises) per second, ratio = vow / node (target >= 10);"
    print "bytes_*: per pending promise, bare or with a callback pair; _heap counts every"
    print "malloc arena and mmap (vow) or the V8 heap after a full GC (node), _rss the"
    print "resident set; ratio = vow / node (target for bytes_bare <= 0.5)"
  }' "$tmp/vow" "$tmp/node"

echo
echo "wire protocol: encode, pipe copy and decode of one message per round"
./build-bench/bench/bench-proto >"$tmp/proto"
awk -F'\t' '
  BEGIN { printf "%-16s %14s %14s %8s\n", "shape", "vow", "msgpack-c", "ratio" }
  $4 == "MB/s" { printf "%-16s %9.0f MB/s %9.0f MB/s %8.2f\n", $1, $2, $3, $2 / $3; next }
  { printf "%-16s %8.2f Mmsg/s %7.2f Mmsg/s %8.2f\n", $1, $2 / 1e6, $3 / 1e6, $2 / $3 }
' "$tmp/proto"

echo
echo "worker pool: 2 workers; peers are Python $(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])') and raw processes"
./build-bench/bench/bench-pool "$n" "$PWD/build-bench/vow-worker" \
  "$PWD/build-bench/bench/bench_plugin.so" >"$tmp/pool"
/usr/bin/python3 bench/pool_peers.py "$n" >"$tmp/peers"
cat "$tmp/pool" "$tmp/peers" | awk -F'\t' '
  { v[$1] = $2 }
  function row(name, a, b, better, target, unit,   r, ok) {
    r = (v[b] > 0) ? v[a] / v[b] : 0
    ok = better == "hi" ? r >= target : r <= target
    printf "%-48s %14.1f %14.1f %8.2f %9s %s\n", name " (" unit ")", v[a], v[b], r,
      (better == "hi" ? ">= " : "<= ") target, ok ? "met" : "MISSED"
  }
  function limit(name, a, max, unit, peer,   ok) {
    ok = v[a] <= max
    printf "%-48s %14.1f %14s %8s %9s %s\n", name " (" unit ")", v[a],
      peer == "" ? "-" : sprintf("%.1f", v[peer]), "-", "<= " max, ok ? "met" : "MISSED"
  }
  END {
    printf "%-48s %14s %14s %8s %9s\n", "measure", "vow", "peer", "ratio", "target"
    row("(a) submit 1 by 1 vs apply_async", "a_submit_tasks_per_s", "a_apply_async_tasks_per_s", "hi", 50, "tasks/s")
    row("(a) submit 1 by 1 vs futures", "a_submit_tasks_per_s", "a_futures_tasks_per_s", "hi", 100, "tasks/s")
    row("(b) map, packing timed, vs Pool.map(chunk=1000)", "b_map_items_per_s", "b_pool_map_items_per_s", "hi", 2, "items/s")
    row("(c) round trip p50 vs socketpair", "c_vow_p50_us", "c_floor_p50_us", "lo", 2, "us")
    row("(c) round trip p99 vs socketpair", "c_vow_p99_us", "c_floor_p99_us", "lo", 2, "us")
    row("(c) round trip p50 vs pipes", "c_vow_p50_us", "c_pipe_floor_p50_us", "lo", 2, "us")
    row("(c) round trip p99 vs pipes", "c_vow_p99_us", "c_pipe_floor_p99_us", "lo", 2, "us")
    row("(c) round trip p50 vs Pool.apply", "c_vow_p50_us", "c_pool_apply_p50_us", "lo", 1, "us")
    row("(c) round trip p99 vs Pool.apply", "c_vow_p99_us", "c_pool_apply_p99_us", "lo", 1, "us")
    row("(d) 2-worker speedup vs fork (medians)", "d_vow_speedup", "d_ceiling_speedup", "hi", 0.97, "x")
    row("(e) 60 MiB each way vs socketpair", "e_vow_mb_s", "e_socketpair_mb_s", "hi", 0.5, "MB/s")
    row("(e) 60 MiB each way vs pipes", "e_vow_mb_s", "e_pipe_mb_s", "hi", 0.5, "MB/s")
    limit("(f) parent bytes per queued task", "f_bytes_per_queued_task", 200, "B", "f_python_bytes_per_pending_task")
    limit("(g) idle vow-worker RSS", "g_worker_rss_idle_kib", 3072, "KiB", "g_python_worker_rss_idle_kib")
    limit("(g) vow-worker RSS after 60 MiB", "g_worker_rss_after_60mib_kib", 3072, "KiB", "")
    print "(a) Python peers run N/10 (apply_async) and N/20 (futures) tasks: rates compared"
  }'

echo
echo "Python as the parent: vow.Pool beside multiprocessing, concurrent.futures and joblib"
PYTHONPATH="$PWD/build-bench/python" /usr/bin/python3 bench/python_parent.py "$n" |
  grep -v '	'

echo
echo "Big values: 1 GiB of float64s to a worker and its sum back, beside memcpy (C)"
./build-bench/bench/bench-shm 1024 | grep -v '	'

echo
echo "Big values from Python: vow.Pool beside joblib, shared_memory by hand and pickle"
PYTHONPATH="$PWD/build-bench/python" /usr/bin/python3 bench/python_shm.py 1024 2>/dev/null |
  grep -v '	'
