#!/bin/sh
# The job queue next to task-spooler (Debian's task-spooler, `tsp`), in
# one run, with the same number of slots: N `true` jobs submitted from a
# shell loop (one client process per job, both: the like-for-like row),
# and through one connection (`vow submit --stdin`; task-spooler has no
# such mode, so its shell loop stands in). Each throughput figure is the
# median of 3 rounds, the tools taking turns. Throughput is N over the time from the first
# submit to the last job's end; submit-to-start latency comes from each
# tool's own record of when a job was queued and when it started.
#   bench/queue.sh [N] [SLOTS]
set -eu
cd "$(dirname "$0")/.."
n=${1:-3000}
slots=${2:-2}
if ! command -v tsp >/dev/null 2>&1; then
  apt-get install -y -qq task-spooler >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq task-spooler >/dev/null; }
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target vow-cli >/dev/null
VOW=$PWD/build-bench/vow
W=$(mktemp -d)
trap 'for s in "$W"/*.sock; do $VOW shutdown --socket "$s" >/dev/null 2>&1 || true;
      TS_SOCKET=$s tsp -K >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.0f\n", n / (b - a)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# Submit-to-start latency on an idle queue: PROBES jobs one at a time,
# each writing the time it started; the clock starts before the client
# command, so its own start-up counts, for both tools alike.
PROBES=200
probe() { # submit-command... ; prints "p50 p99 mean" in ms
  : > "$W/lat"
  k=0
  while [ $k -lt $PROBES ]; do
    rm -f "$W/started"
    t=$(now)
    "$@" sh -c "date +%s.%N > $W/started" >/dev/null
    while [ ! -s "$W/started" ]; do :; done
    echo "$t $(cat "$W/started")" >> "$W/lat"
    k=$((k + 1))
  done
  awk '{print ($2 - $1) * 1000}' "$W/lat" | sort -n | awk '
    {v[NR] = $1; s += $1}
    END {printf "%.2f %.2f %.2f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], s / NR}'
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# One round of each figure; each prints its jobs per second.
ceiling_round() {
  t0=$(now)
  i=0
  while [ $i -lt "$n" ]; do
    /bin/true
    i=$((i + 1))
  done
  rate "$n" "$t0" "$(now)"
}

vow_loop_round() { # one client process per job
  S=$W/v$1.sock
  $VOW serve --socket "$S" -j "$slots"
  t0=$(now)
  i=0
  while [ $i -lt "$n" ]; do
    $VOW submit --socket "$S" -- true >/dev/null
    i=$((i + 1))
  done
  $VOW wait --socket "$S" $(seq 1 "$n")
  rate "$n" "$t0" "$(now)"
  $VOW shutdown --socket "$S" >/dev/null
}

vow_stdin_round() { # every job through one connection
  S=$W/s$1.sock
  $VOW serve --socket "$S" -j "$slots"
  t0=$(now)
  seq 1 "$n" | sed 's/.*/true/' | $VOW submit --socket "$S" --stdin >/dev/null
  $VOW wait --socket "$S" $(seq 1 "$n")
  rate "$n" "$t0" "$(now)"
  $VOW shutdown --socket "$S" >/dev/null
}

ts_loop_round() { # one client process per job
  TS_SOCKET=$W/ts$1.sock
  export TS_SOCKET TS_MAXFINISHED=$((n + PROBES + 10)) TMPDIR=$W
  tsp -S "$slots" >/dev/null
  t0=$(now)
  i=0
  while [ $i -lt "$n" ]; do
    tsp -n true >/dev/null
    i=$((i + 1))
  done
  # tsp -w waits for one job; wait until none is queued or running.
  while tsp -l | awk 'NR > 1 && $2 != "finished" {found = 1} END {exit !found}'; do
    sleep 0.01
  done
  rate "$n" "$t0" "$(now)"
  tsp -K >/dev/null 2>&1 || true
}

# Three rounds, the figures interleaved, so a passing disturbance moves
# one sample of one side, not a whole side.
: >"$W/ceiling"; : >"$W/vow_loop"; : >"$W/vow_one"; : >"$W/ts_loop"
r=1
while [ $r -le 3 ]; do
  ceiling_round >>"$W/ceiling"
  vow_loop_round $r >>"$W/vow_loop"
  ts_loop_round $r >>"$W/ts_loop"
  vow_stdin_round $r >>"$W/vow_one"
  r=$((r + 1))
done
floor=$(median <"$W/ceiling")
vow_loop=$(median <"$W/vow_loop")
ts_loop=$(median <"$W/ts_loop")
vow_one=$(median <"$W/vow_one")

# Latency on idle queues, one daemon of each.
S=$W/lat.sock
$VOW serve --socket "$S" -j "$slots"
vow_lat=$(probe "$VOW" submit --socket "$S" --)
$VOW shutdown --socket "$S" >/dev/null
export TS_SOCKET=$W/tslat.sock TS_MAXFINISHED=$((PROBES + 10)) TMPDIR=$W
tsp -S "$slots" >/dev/null
ts_lat=$(probe tsp -n)
tsp -K >/dev/null 2>&1 || true

echo "# $n true jobs, $slots slots, $(nproc) cores; medians of 3 interleaved rounds; latency: $PROBES jobs one at a time on an idle queue"
echo "| submitted | vow jobs/s | task-spooler jobs/s | ratio |"
echo "|---|---|---|---|"
echo "| like for like: shell loop, one client process per job, both | $vow_loop | $ts_loop | $(ratio "$vow_loop" "$ts_loop") |"
echo "| vow submit --stdin, one connection (tsp has none: its loop) | $vow_one | $ts_loop | $(ratio "$vow_one" "$ts_loop") |"
echo "| (ceiling: the shell loop running /bin/true, no queue) | $floor | | $(ratio "$floor" "$ts_loop") |"
echo
echo "| submit-to-start latency | p50 ms | p99 ms | mean ms |"
echo "|---|---|---|---|"
echo "$vow_lat" | awk '{printf "| vow | %s | %s | %s |\n", $1, $2, $3}'
echo "$ts_lat" | awk '{printf "| task-spooler | %s | %s | %s |\n", $1, $2, $3}'
