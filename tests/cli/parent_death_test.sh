#!/bin/sh
# Every kind of worker dies with its parent: vow map SIGKILLed while its
# workers are busy in long tasks (the stock vow-worker with a plugin, and
# the Python worker in a CPU loop); none is left after a moment. The
# workers are this test's own, found by a mark in their environment.
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

# Our workers: processes whose environment carries VOW_TEST_MARK=$1.
ours() {
  for p in $(ls /proc | grep '^[0-9]*$'); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null |
      grep -qx "VOW_TEST_MARK=$1" && [ "$p" != "$2" ] && echo "$p"
  done
}

# Starts vow map (the rest of the arguments) with two workers busy for a
# minute (each input line is LINE), SIGKILLs it, and prints how many of
# its workers were left after up to 5 s, then the tenths of a second they
# took to go.
kill_parent() {
  mark=$1
  line=$2
  shift 2
  printf '%s\n%s\n' "$line" "$line" |
    VOW_TEST_MARK=$mark $VOW map -j 2 "$@" >/dev/null 2>&1 &
  parent=$!
  wait_for '[ "$(ours "$mark" "$parent" | wc -l)" -ge 2 ]'
  sleep 0.3 # into their tasks
  kill -9 "$parent"
  n=0
  while [ -n "$(ours "$mark" "$parent")" ] && [ $n -lt 50 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  wait "$parent" 2>/dev/null
  echo "$(ours "$mark" "$parent" | wc -l | tr -d ' ') $n"
}

set -- $(kill_parent c$$ '[60000]' "$PLUGIN" sleep)
check "vow-worker: none left when its parent is killed" 0 "$1"
echo "# vow-worker: gone within $2 tenths of a second"
set -- $(kill_parent py$$ 60 --worker "python3 $EXAMPLES/python/vow_worker.py $T/mod.py" spin)
check "Python worker, busy in a loop: none left when its parent is killed" 0 "$1"
echo "# Python worker: gone within $2 tenths of a second"

report
