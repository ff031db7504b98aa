#!/bin/sh
# VOW_DEBUG: off by default; on, a line for every message each way and
# every change of a worker's state, on stderr (1) or in a file; a worker
# that dies shows its end and what became of its tasks.
#   trace_test.sh VOW_BINARY PLUGIN
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
in_tmpdir

seq 1 20 | sed 's/.*/[&, 1]/' >in.jsonl
env -u VOW_DEBUG $VOW map -j 2 "$PLUGIN" add <in.jsonl >off.out 2>off.err
check "off: the run succeeds" 0 $?
check "off: no trace on stderr" 0 "$(grep -c vow-trace off.err)"

VOW_DEBUG=1 $VOW map -j 2 "$PLUGIN" add <in.jsonl >on.out 2>on.err
check "VOW_DEBUG=1: the run succeeds" 0 $?
check "VOW_DEBUG=1: the same results" "$(cat off.out)" "$(cat on.out)"
check "VOW_DEBUG=1: every line has the trace's form" 0 \
  "$(grep -vc '^vow-trace [0-9]*\.[0-9]* pid [0-9]* \(pool\|worker [0-9]*\)' on.err)"
# The lines go out in chunks: each chunk sent once, its result back once,
# and the chunks' items add up to the 20 lines.
sent=$(grep -o -- '-> CHUNK task [0-9]*' on.err | grep -o '[0-9]*$' | sort -n)
check "chunks were sent" yes "$([ -n "$sent" ] && echo yes)"
check "each chunk sent once" "$(echo "$sent" | sort -un)" "$sent"
check "each chunk's result received once" "$sent" \
  "$(grep -o '<- RESULT task [0-9]*' on.err | grep -o '[0-9]*$' | sort -n)"
check "the chunks hold the 20 lines" 20 \
  "$(grep -o '(\([0-9]*\) items from' on.err | grep -o '[0-9]*' |
    awk '{s += $1} END {print s}')"
# Each worker's life, in order.
for w in 0 1; do
  check "worker $w: its states in order" \
    "STARTING -> READY${nl}READY -> STOPPING${nl}STOPPING -> DEAD" \
    "$(grep "worker $w (pid [0-9]*): state" on.err | sed 's/.*: state //')"
  check "worker $w: spawned, said HELLO, was asked to stop, exited" 4 \
    "$(grep "worker $w " on.err |
      grep -c 'spawned (local transport)\|<- HELLO\|-> SHUTDOWN\|exited: status 0, signal 0')"
done

# To a file, appended; a task that crashes its worker.
echo '"x"' >crash.jsonl
VOW_DEBUG=$T/trace.log $VOW map -j 1 "$PLUGIN" crash <crash.jsonl >crash.out 2>crash.err
check "a crashing task fails the run" 1 $?
check "VOW_DEBUG=FILE: nothing on stderr" 0 "$(grep -c vow-trace crash.err)"
check "the worker's end: SIGSEGV" yes \
  "$(grep -q 'exited: status [0-9-]*, signal 11' trace.log && echo yes)"
check "its state went READY -> DEAD" yes \
  "$(grep -q 'state READY -> DEAD' trace.log && echo yes)"
check "its task fails, said by the pool" yes \
  "$(grep -q 'pool: task [0-9]* failed: the worker died' trace.log && echo yes)"
spawns=$(grep -c 'spawned (local transport)' trace.log)
VOW_DEBUG=$T/trace.log $VOW map -j 1 "$PLUGIN" add <in.jsonl >/dev/null 2>&1
check "VOW_DEBUG=FILE: appended" $((spawns + 1)) \
  "$(grep -c 'spawned (local transport)' trace.log)"

VOW_DEBUG=/nonexistent/dir/trace $VOW map -j 1 "$PLUGIN" add <in.jsonl >bad.out 2>bad.err
check "an unwritable trace file: the run goes on" 0 $?
check "an unwritable trace file: said once" 1 \
  "$(grep -c 'VOW_DEBUG: cannot open /nonexistent/dir/trace' bad.err)"

report
