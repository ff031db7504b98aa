#!/bin/sh
# The vow command against its peers, in one run:
#   vow run vs GNU parallel vs xargs -P 2: 2,000 jobs of `true` and of
#   `echo {}`, -j 2;
#   vow map of a no-op function over N JSON lines vs Python's
#   multiprocessing (json.loads -> Pool.imap(chunksize=1000) ->
#   json.dumps) with Debian's /usr/bin/python3.
#   bench/cli.sh [N]   JSON lines (default 1,000,000)
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000000}
sh scripts/install-deps.sh
command -v parallel >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq parallel >/dev/null; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_BENCH=ON \
  -DVOW_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target vow-cli vow-worker bench_plugin >/dev/null
VOW=$PWD/build-bench/vow
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seq 1 2000 > "$tmp/args"

t() { # seconds a command takes
  s=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

printf '%-28s %10s %10s %10s %10s %10s\n' "2000 jobs, -j 2" "vow s" "parallel s" "xargs s" "vs par." "vs xargs"
for job in true echo; do
  if [ "$job" = true ]; then
    v=$(t "$VOW" run -j 2 true :::: "$tmp/args")
    p=$(t parallel --will-cite -j 2 true :::: "$tmp/args")
    x=$(t xargs -P 2 -n 1 true < "$tmp/args")
  else
    v=$(t "$VOW" run -j 2 echo {} :::: "$tmp/args")
    p=$(t parallel --will-cite -j 2 echo {} :::: "$tmp/args")
    x=$(t xargs -P 2 -n 1 echo < "$tmp/args")
  fi
  printf '%-28s %10.3f %10.3f %10.3f %9.2fx %9.2fx\n' "$job" "$v" "$p" "$x" \
    "$(echo "$p / $v" | bc -l)" "$(echo "$v / $x" | bc -l)"
done
echo "(vs par.: GNU parallel's time / vow's, target >= 4; vs xargs: vow's time / xargs', target <= 1.2)"

seq 1 "$n" > "$tmp/lines.jsonl"
cat > "$tmp/peer.py" <<'PY'
import json, multiprocessing, sys
def noop(x):
    return None
if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        out = sys.stdout
        for r in pool.imap(noop, (json.loads(l) for l in sys.stdin), chunksize=1000):
            out.write(json.dumps(r) + "\n")
PY
v=$(t sh -c "'$VOW' map '$PWD/build-bench/bench/bench_plugin.so' noop -j 2 < '$tmp/lines.jsonl'")
p=$(t sh -c "/usr/bin/python3 '$tmp/peer.py' < '$tmp/lines.jsonl'")
echo
printf '%-28s %12s %12s %8s\n' "vow map, $n JSON lines" "vow lines/s" "python l/s" "ratio"
printf '%-28s %12.0f %12.0f %7.2fx\n' "no-op function, 2 workers" \
  "$(echo "$n / $v" | bc -l)" "$(echo "$n / $p" | bc -l)" "$(echo "$p / $v" | bc -l)"
echo "(target: ratio >= 5)"
