#!/bin/sh
# Every kind of worker dies with its parent: vow map SIGKILLed while its
# workers are busy in long tasks (the stock vow-worker with a plugin, and
# the Python worker in a CPU loop); none is left after a moment. The
# workers are this test's own: the parent's children, with a mark in
# their environment.
#   parent_death_test.sh VOW_BINARY PLUGIN EXAMPLES_DIR
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
EXAMPLES=$3
in_tmpdir

cat >mod.py <<'EOF'
import time

def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # busy, never reading its channel
        pass
    return seconds
EOF

# Which of the pids (the rest of the arguments) still carry
# VOW_TEST_MARK=$1 in their environment: ours, not a later process that
# took a freed pid.
marked() {
  mark=$1
  shift
  for p in "$@"; do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null |
      grep -qx "VOW_TEST_MARK=$mark" && echo "$p"
  done
}

# Starts vow map (the rest of the arguments) with two workers busy for a
# minute (each input line is LINE), SIGKILLs it, and prints how many of
# workers it found, how many of them were left after up to 5 s, then the
# tenths of a second they took to go. The workers are found among the parent's children once, so
# each look costs a few processes however busy the machine is.
kill_parent() {
  mark=$1
  line=$2
  shift 2
  printf '%s\n%s\n' "$line" "$line" |
    VOW_TEST_MARK=$mark $VOW map -j 2 "$@" >/dev/null 2>&1 &
  parent=$!
  # The list that was seen whole is kept: a child in the middle of its
  # exec may not show its environment to a second look.
  workers=
  wait_for 'workers=$(marked "$mark" $(pgrep -P "$parent"))
            [ "$(echo $workers | wc -w)" -ge 2 ]'
  workers=$(echo $workers)
  sleep 0.3 # into their tasks
  kill -9 "$parent"
  n=0
  while [ -n "$(marked "$mark" $workers)" ] && [ $n -lt 50 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  wait "$parent" 2>/dev/null
  echo "$(echo $workers | wc -w | tr -d ' ') $(marked "$mark" $workers | wc -l | tr -d ' ') $n"
}

set -- $(kill_parent c$$ '[60000]' "$PLUGIN" sleep)
check "vow-worker: both workers found" 2 "$1"
check "vow-worker: none left when its parent is killed" 0 "$2"
echo "# vow-worker: gone within $3 tenths of a second"
set -- $(kill_parent py$$ 60 --worker "python3 $EXAMPLES/python/vow_worker.py $T/mod.py" spin)
check "Python worker: both workers found" 2 "$1"
check "Python worker, busy in a loop: none left when its parent is killed" 0 "$2"
echo "# Python worker: gone within $3 tenths of a second"

report
