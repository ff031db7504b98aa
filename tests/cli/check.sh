# Sourced by the CLI tests: check NAME EXPECTED ACTUAL counts a pass or
# prints what differed; report prints the tally and fails if any check
# did.
fails=0
passes=0

check() {
  if [ "$2" = "$3" ]; then
    passes=$((passes + 1))
  else
    fails=$((fails + 1))
    printf 'FAIL %s\n--- expected\n%s\n--- got\n%s\n' "$1" "$2" "$3"
  fi
}

# Every process this test starts carries this mark in its environment
# (jobs, daemons and workers inherit it), so that the test counts its own
# processes, never another program's that happens to look the same.
VOW_TEST_RUN="$$-$(date +%s%N)"
export VOW_TEST_RUN

# The pids of our own processes whose command line matches PATTERN
# (pgrep -f), one a line.
mine() {
  for p in $(pgrep -f "$1"); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null |
      grep -qx "VOW_TEST_RUN=$VOW_TEST_RUN" && echo "$p"
  done
}
# How many of our own processes match PATTERN.
count_mine() { mine "$1" | wc -l | tr -d ' '; }

# await_mine PATTERN N: waits (up to 10 s) until N of our own processes
# match PATTERN.
await_mine() {
  n=0
  while [ "$(count_mine "$1")" -lt "$2" ] && [ $n -lt 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
}

# A newline, for expected values of several lines.
nl='
'

# Works in a fresh temporary directory, removed at exit, as $T.
in_tmpdir() {
  T=$(mktemp -d)
  trap 'rm -rf "$T"' EXIT
  cd "$T" || exit 1
}

# Like in_tmpdir, for the queue's tests: $T is reachable by a daemon run
# as another user, and at exit every daemon whose socket lies in $T (or
# one folder down) is shut down and a disk mounted at $T/full unmounted.
in_queue_tmpdir() {
  T=$(mktemp -d)
  chmod 711 "$T"
  trap queue_cleanup EXIT
  cd "$T" || exit 1
}
queue_cleanup() {
  for s in "$T"/*.sock "$T"/*/*.sock; do
    [ -S "$s" ] && $VOW shutdown --socket "$s" >/dev/null 2>&1
  done
  mountpoint -q "$T/full" 2>/dev/null && umount "$T/full"
  rm -rf "$T"
}

# await_output FILE: waits until FILE has something in it, up to 30 s,
# then prints 1 if it has, else 0. A producer that holds back the rest of
# its input this way tells a stream (output before the input ends) from
# a batch whatever the host's speed.
await_output() {
  n=0
  while [ ! -s "$1" ] && [ $n -lt 300 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if [ -s "$1" ]; then echo 1; else echo 0; fi
}

report() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}

# PAR is "parallel" when GNU parallel is installed, for the checks that
# run a command beside it; else empty, and those checks are skipped.
PAR=
if command -v parallel >/dev/null 2>&1; then
  PAR=parallel
fi
skip_without_parallel() {
  [ -n "$PAR" ] || echo "skip: GNU parallel is not installed (side-by-side checks)"
}

# peak_kb CMD...: runs CMD in the background (stdin from $PEAK_IN, stdout
# to $PEAK_OUT, else /dev/null) and prints its peak resident set in kB,
# read from /proc while it runs; its exit status goes to peak.status.
peak_kb() {
  "$@" <"${PEAK_IN:-/dev/null}" >"${PEAK_OUT:-/dev/null}" 2>&1 &
  peak_pid=$!
  peak=0
  while kill -0 $peak_pid 2>/dev/null; do
    h=$(awk '/^VmHWM/ {print $2}' /proc/$peak_pid/status 2>/dev/null)
    [ -n "$h" ] && peak=$h
    sleep 0.05
  done
  wait $peak_pid
  echo $? >peak.status
  echo "$peak"
}

# check_rss NAME LIMIT_KB KB: a peak resident set within its bound. Under
# a sanitizer (VOW_TEST_SANITIZED=1) freed memory sits in its quarantine,
# so the bound says nothing and the check is skipped.
check_rss() {
  if [ "${VOW_TEST_SANITIZED:-0}" = 1 ]; then
    echo "skip: $1 (the sanitizer's quarantine keeps freed memory)"
    return
  fi
  if [ -n "$3" ] && [ "$3" -lt "$2" ]; then
    check "$1" ok ok
  else
    check "$1" "under $2 kB" "${3:-nothing} kB"
  fi
}

# wait_for COND: waits (up to 10 s) until the shell condition holds: a
# busy machine may take a while to start a job.
wait_for() {
  n=0
  while ! eval "$1" && [ $n -lt 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
}

# The pid of the queue daemon serving socket $1.
daemon_pid() { pgrep -f "vow serve --socket $1( |\$)" | head -1; }
