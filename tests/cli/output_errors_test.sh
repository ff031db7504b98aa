#!/bin/sh
# Output that cannot be written is an error, never a silent exit 0: a
# full stdout, a full joblog, a full TMPDIR under -k. And a joblog line is
# only ever written after its job's output, so --resume after a crash
# never skips a job whose output was lost.
#   output_errors_test.sh VOW_BINARY PLUGIN
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
in_tmpdir

# A full stdout, for vow run (grouped, -k, --line-buffer), vow map and
# vow status.
for opts in "" "-k" "--line-buffer"; do
  # shellcheck disable=SC2086
  $VOW run $opts echo ::: a b >/dev/full 2>err.txt
  check "run $opts >/dev/full: status 255" 255 $?
  check "run $opts >/dev/full: names it" 1 \
    "$(grep -c 'writing standard output: No space left on device' err.txt)"
done
seq 1 5 | $VOW map "$PLUGIN" echo >/dev/full 2>err.txt
check "map >/dev/full: status 255" 255 $?
check "map >/dev/full: names it" 1 \
  "$(grep -c 'writing standard output: No space left on device' err.txt)"
$VOW run --dry-run echo ::: a >/dev/full 2>err.txt
check "run --dry-run >/dev/full: status 255" 255 $?

# A full joblog.
$VOW run --joblog /dev/full echo ::: a b >/dev/null 2>err.txt
check "run --joblog /dev/full: status 255" 255 $?
check "run --joblog /dev/full: names it" 1 "$(grep -c '/dev/full' err.txt)"
seq 1 5 | $VOW map "$PLUGIN" echo --joblog /dev/full >/dev/null 2>err.txt
check "map --joblog /dev/full: status 255" 255 $?
check "map --joblog /dev/full: names it" 1 "$(grep -c '/dev/full' err.txt)"

# A full TMPDIR: -k spills what a job waiting its turn wrote past 1 MiB.
# A tmpfs of 256 KiB where one can be mounted, else a file size limit.
mkdir small
if mount -t tmpfs -o size=256k tmpfs small 2>/dev/null; then
  trap 'umount "$T/small" 2>/dev/null; rm -rf "$T"' EXIT
  limit=
else
  limit=256
fi
# shellcheck disable=SC2016
(
  trap '' XFSZ
  [ -z "$limit" ] || ulimit -f "$limit"
  TMPDIR=$T/small exec $VOW run -k -j 2 \
    sh -c 'sleep "0.$1"; head -c 3000000 /dev/zero' sh ::: 5 1 >spilled 2>err.txt
)
check "full TMPDIR under -k: status 255" 255 $?
check "full TMPDIR: says the output is incomplete" 1 \
  "$(grep -c 'output is incomplete: writing .*small' err.txt)"
mountpoint -q small && umount small

# --results into a folder that cannot take it.
mkdir ro && chmod 500 ro
if [ "$(id -u)" != 0 ]; then
  $VOW run --results ro/r echo ::: a >/dev/null 2>err.txt
  check "--results unwritable: status 255" 255 $?
fi

# The joblog follows the output: with -k, jobs 2..12 finish while job 1
# still runs, and their output waits behind it. A SIGKILL then, and a
# --resume: every job's output is somewhere, none lost.
# shellcheck disable=SC2016
$VOW run -k -j 4 --joblog jl sh -c \
  'if [ "$1" = 1 ]; then sleep 30.217; fi; echo "$1"; touch "done.$1"' sh \
  ::: $(seq 1 12) >first 2>/dev/null &
run=$!
wait_for '[ "$(ls done.* 2>/dev/null | wc -l)" -ge 11 ]'
sleep 0.3
kill -9 $run
wait $run 2>/dev/null
pkill -f '^sleep 30.217$'
check "run -k killed: the joblog names only jobs whose output is out" "" \
  "$(awk 'NR > 1 {print $1}' jl | grep -vxF "$(cat first)" | grep .)"
$VOW run -k -j 4 --joblog jl --resume echo ::: $(seq 1 12) >second 2>/dev/null
check "run -k killed, then --resume: no output lost" "$(seq 1 12)" \
  "$(cat first second | sort -n | uniq)"

# The same for vow map: its results are ordered, so line 1 (slow) holds
# back the rest; killed, then resumed, nothing is missing.
{
  echo '[3000]'
  for i in $(seq 2 40); do echo '[1]'; done
} >slow.jsonl
$VOW map "$PLUGIN" sleep --line-numbers -j 2 --joblog mj <slow.jsonl \
  >mfirst 2>/dev/null &
map=$!
sleep 1.5
kill -9 $map
wait $map 2>/dev/null
logged=$(awk 'NR > 1 {print $1}' mj | sort -n)
written=$(grep -o '"line":[0-9]*' mfirst | cut -d: -f2 | sort -n)
check "map killed: every logged line was written" "" \
  "$(echo "$logged" | grep -vxF "$written" | grep .)"
$VOW map "$PLUGIN" sleep --line-numbers -j 2 --joblog mj --resume \
  <slow.jsonl >msecond 2>/dev/null
check "map killed, then --resume: every line somewhere" "$(seq 1 40)" \
  "$(cat mfirst msecond | grep -o '"line":[0-9]*' | cut -d: -f2 | sort -n | uniq)"

report
