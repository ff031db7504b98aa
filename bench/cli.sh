#!/bin/sh
# The vow command against its peers, in one run. Every figure is taken 3
# times, the rounds interleaved (vow, then its peer, then the next figure,
# then round 2 ...), and the median printed, so a passing disturbance
# moves one sample, not a side.
#
#   vow run vs GNU parallel vs xargs -P 2: 2,000 jobs of `true` and of
#     `echo {}`, -j 2;
#   the first job's start when input trickles in (stdin), vs parallel;
#   -k with a slow first job and 200 jobs of 900 kB: peak RSS, vs parallel;
#   503 MB of output through -k, vs parallel;
#   vow map of a no-op C function over N JSON lines vs Python's
#     multiprocessing (json.loads -> Pool.imap(chunksize=1000) ->
#     json.dumps), and the same with a Python function through the Python
#     worker, with Debian's /usr/bin/python3.
#
#   bench/cli.sh [N]   JSON lines (default 1,000,000)
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000000}
rounds=3
sh scripts/install-deps.sh
for tool in parallel:parallel bc:bc /usr/bin/time:time; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${tool##*:}" >/dev/null; }
done
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_BENCH=ON \
  -DVOW_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target vow-cli vow-worker bench_plugin >/dev/null
VOW=$PWD/build-bench/vow
PLUGIN=$PWD/build-bench/bench/bench_plugin.so
PYWORKER=$PWD/examples/python/vow_worker.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seq 1 2000 >"$tmp/args"
seq 1 200 >"$tmp/args200"
seq 1 "$n" >"$tmp/lines.jsonl"

# sample NAME CMD...: the seconds CMD takes, added to NAME's samples.
sample() {
  name=$1
  shift
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || true
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l >>"$tmp/$name"
}
# rss NAME CMD...: CMD's peak resident set in kB (GNU time: the largest
# of the process and the children it waited for).
rss() {
  name=$1
  shift
  /usr/bin/time -f %M -o "$tmp/rss.out" "$@" >/dev/null 2>&1 || true
  tail -1 "$tmp/rss.out" >>"$tmp/$name"
}
# first NAME CMD: ms from the start until CMD's first job starts, with
# input "a", then "b" 2 s later, on its stdin (each job appends the time
# it started to first.at).
first() {
  name=$1
  shift
  rm -f "$tmp/first.at"
  s=$(date +%s%N)
  (echo a; sleep 2; echo b) | "$@" >/dev/null 2>&1 || true
  e=$(sort -n "$tmp/first.at" | head -1)
  echo "($e - $s) / 1000000" | bc >>"$tmp/$name"
}
median() { sort -g "$tmp/$1" | sed -n 2p; }

cat >"$tmp/peer.py" <<'PY'
import json, multiprocessing, sys
def noop(x):
    return None
def square(x):
    return x * x
if __name__ == "__main__":
    fn = square if sys.argv[1:] == ["square"] else noop
    with multiprocessing.get_context("fork").Pool(2) as pool:
        out = sys.stdout
        for r in pool.imap(fn, (json.loads(l) for l in sys.stdin), chunksize=1000):
            out.write(json.dumps(r) + "\n")
PY
printf 'def square(x):\n    return x * x\n' >"$tmp/sq.py"
stamp='date +%s%N >>'"$tmp/first.at"

round=1
while [ $round -le $rounds ]; do
  echo "round $round of $rounds" >&2
  sample v_true "$VOW" run -j 2 true :::: "$tmp/args"
  sample p_true parallel --will-cite -j 2 true :::: "$tmp/args"
  sample x_true xargs -P 2 -n 1 true <"$tmp/args"
  sample v_echo "$VOW" run -j 2 echo {} :::: "$tmp/args"
  sample p_echo parallel --will-cite -j 2 echo {} :::: "$tmp/args"
  sample x_echo xargs -P 2 -n 1 echo <"$tmp/args"
  first v_first "$VOW" run sh -c "$stamp; echo {}"
  first p_first parallel --will-cite -q sh -c "$stamp; echo {}"
  slow='[ {} = 1 ] && sleep 2; head -c 900000 /dev/zero'
  rss v_krss "$VOW" run -k -j8 sh -c "$slow" :::: "$tmp/args200"
  rss p_krss parallel --will-cite -q -k -j8 sh -c "$slow" :::: "$tmp/args200"
  sample v_big "$VOW" run -k -j 2 sh -c 'head -c 50300000 /dev/zero' ::: 1 2 3 4 5 6 7 8 9 10
  sample p_big parallel --will-cite -q -k -j 2 sh -c 'head -c 50300000 /dev/zero' ::: 1 2 3 4 5 6 7 8 9 10
  sample v_map sh -c "'$VOW' map '$PLUGIN' noop -j 2 <'$tmp/lines.jsonl'"
  sample p_map sh -c "/usr/bin/python3 '$tmp/peer.py' <'$tmp/lines.jsonl'"
  sample v_pymap sh -c "'$VOW' map --worker '/usr/bin/python3 $PYWORKER $tmp/sq.py' square -j 2 <'$tmp/lines.jsonl'"
  sample p_pymap sh -c "/usr/bin/python3 '$tmp/peer.py' square <'$tmp/lines.jsonl'"
  round=$((round + 1))
done 2>/dev/null
true

ratio() { echo "$1 / $2" | bc -l; }
echo "medians of $rounds interleaved rounds"
printf '%-34s %10s %10s %10s %9s %9s\n' "2000 jobs, -j 2" "vow s" "parallel s" "xargs s" "par./vow" "vow/xargs"
for job in true echo; do
  v=$(median "v_$job")
  p=$(median "p_$job")
  x=$(median "x_$job")
  printf '%-34s %10.3f %10.3f %10.3f %8.2fx %8.2fx\n' "$job" "$v" "$p" "$x" \
    "$(ratio "$p" "$v")" "$(ratio "$v" "$x")"
done
echo "(targets: par./vow >= 4; vow/xargs <= 1.2)"
echo
printf '%-34s %10s %10s %9s\n' "vow run beside GNU parallel" "vow" "parallel" "ratio"
v=$(median v_first)
p=$(median p_first)
printf '%-34s %8s ms %8s ms %8.2fx\n' "first job starts, input trickling" "$v" "$p" "$(ratio "$p" "$v")"
v=$(median v_krss)
p=$(median p_krss)
printf '%-34s %7.1f MB %7.1f MB %8.2fx\n' "-k, slow first job: peak RSS" \
  "$(ratio "$v" 1024)" "$(ratio "$p" 1024)" "$(ratio "$p" "$v")"
v=$(median v_big)
p=$(median p_big)
printf '%-34s %9.3f s %9.3f s %8.2fx\n' "-k, 503 MB of output" "$v" "$p" "$(ratio "$p" "$v")"
echo "(ratio: parallel's / vow's; targets: RSS and 503 MB >= 1/1.2)"
echo
printf '%-34s %12s %12s %8s\n' "vow map, $n JSON lines, 2 workers" "vow lines/s" "python l/s" "ratio"
v=$(median v_map)
p=$(median p_map)
printf '%-34s %12.0f %12.0f %7.2fx\n' "no-op C function vs Pool.imap" \
  "$(ratio "$n" "$v")" "$(ratio "$n" "$p")" "$(ratio "$p" "$v")"
v=$(median v_pymap)
p=$(median p_pymap)
printf '%-34s %12.0f %12.0f %7.2fx\n' "Python x*x: vow's worker vs imap" \
  "$(ratio "$n" "$v")" "$(ratio "$n" "$p")" "$(ratio "$p" "$v")"
echo "(targets: C function ratio >= 5; Python function ratio >= 1)"
