#!/bin/sh
# vow map, driven for real with the test plugin: JSON round trips, bad
# lines, failing and crashing tasks, ordering, empty input, bad usage.
#   map_test.sh VOW_BINARY PLUGIN.so EXAMPLES_DIR HOSTILE_WORKER
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
EXAMPLES=$3
HOSTILE=$4
nl='
'

in='1
-9223372036854775808
9223372036854775807
0.1
1.7976931348623157e+308
"caf\u00e9 \"q\""
[1,[2,[3]],{"k":null}]
{"a":true,"b":false}
null'
want='1
-9223372036854775808
9223372036854775807
0.10000000000000001
1.7976931348623157e+308
"café \"q\""
[1,[2,[3]],{"k":null}]
{"a":true,"b":false}
null'
check "echo round trip" "$want" "$(printf '%s\n' "$in" | $VOW map "$PLUGIN" echo -j 2)"

out=$(printf '[1,2]\nnot json\n[3,4]\n{"unclosed": \n[5,6]\n' | $VOW map "$PLUGIN" add)
check "bad lines: status" 2 $?
check "bad lines: output" \
  "3${nl}{\"line\":2,\"error\":\"not valid JSON: invalid token near 'not' at column 3\"}${nl}7${nl}{\"line\":4,\"error\":\"not valid JSON: '[' or '{' expected near end of file at column 13\"}${nl}11" \
  "$(echo "$out" | sed 's/\"error\":\"not valid JSON: [^\"]*column 13\"/\"error\":\"not valid JSON: '"'"'['"'"' or '"'"'{'"'"' expected near end of file at column 13\"/')"
out=$(printf '[1,2]\nnot json\n' | $VOW map "$PLUGIN" add --errors-to-stderr 2>/dev/null)
check "--errors-to-stderr" "3" "$out"

out=$(printf '1\n7\n2\n' | $VOW map "$PLUGIN" fail)
check "failing task: status" 3 $?
check "failing task: message" 1 "$(echo "$out" | grep -c '"line":2,"error":"task error: refused 7')"

out=$(printf '1\n2\n' | $VOW map "$PLUGIN" crash 2>/dev/null)
check "crashing task: status" 2 $?
check "crashing task: worker died" 2 "$(echo "$out" | grep -c 'worker died')"

check "--line-numbers" '{"line":1,"result":3}
{"line":2,"result":7}' "$(printf '[1,2]\n[3,4]\n' | $VOW map "$PLUGIN" add --line-numbers)"
check "--unordered has every line" "$(seq 1 200)" \
  "$(seq 1 200 | $VOW map "$PLUGIN" echo --unordered | sort -n)"
check "ordered by default" "$(seq 1 500)" "$(seq 1 500 | $VOW map "$PLUGIN" echo -j 2)"
check "empty input" "" "$($VOW map "$PLUGIN" echo </dev/null)"
check "last line without newline" "5" "$(printf '[2,3]' | $VOW map "$PLUGIN" add)"
check "bin as base64" '"AAEC"' "$(printf '3\n' | $VOW map "$PLUGIN" bin3)"
check "bin as array" '[0,1,2]' "$(printf '3\n' | $VOW map "$PLUGIN" bin3 --bytes array)"

# A timeout fails only the line that ran too long, not the one before it
# on the same worker.
out=$(printf '[100]\n[3000]\n[50]\n' | $VOW map "$PLUGIN" sleep --timeout 1 -j 2)
check "timeout: status" 1 $?
check "timeout: only the slow line" "100${nl}timeout${nl}50" \
  "$(echo "$out" | sed 's/.*"error":"timeout.*/timeout/')"

# Joblog and resume, as vow run's.
jl=$(mktemp)
rm -f "$jl"
printf '1\n9\n3\n' | $VOW map "$PLUGIN" fail_if_9 --joblog "$jl" > /dev/null
check "map joblog status" 1 $?
check "map joblog exitvals" "0${nl}1${nl}0" "$(tail -n +2 "$jl" | sort -n | cut -f7)"
check "map --resume-failed" "9" \
  "$(printf '1\n9\n3\n' | $VOW map "$PLUGIN" echo --joblog "$jl" --resume-failed)"
check "map --resume" "" \
  "$(printf '1\n9\n3\n' | $VOW map "$PLUGIN" echo --joblog "$jl" --resume)"
rm -f "$jl"

# A Python function as the task, through the Python worker module.
PYW="/usr/bin/python3 $EXAMPLES/python/vow_worker.py $EXAMPLES/python/tasks.py"
check "python worker" "9${nl}16" "$(printf '3\n4\n' | $VOW map --worker "$PYW" square)"
out=$(printf '"boom"\n' | $VOW map --worker "$PYW" fail)
check "python worker: failure" 1 "$(echo "$out" | grep -c 'task error: ValueError: boom')"
a=$(seq 1 8 | sed 's/.*/20000/' | $VOW map --worker "$PYW" monte_carlo_pi -j 1 --seed 7)
b=$(seq 1 8 | sed 's/.*/20000/' | $VOW map --worker "$PYW" monte_carlo_pi -j 2 --seed 7)
check "python worker: same seed, 1 or 2 workers" "$a" "$b"

$VOW map /nonexistent/plugin.so echo </dev/null 2>err
check "missing plugin: status" 255 $?
check "missing plugin: message" 1 "$(grep -c 'cannot read the plugin /nonexistent/plugin.so' err)"
out=$(printf '1\n' | $VOW map "$PLUGIN" no_such_fn)
check "unknown function" 1 "$(echo "$out" | grep -c 'no function named \\"no_such_fn\\"')"
$VOW map --bogus 2>/dev/null </dev/null
check "bad option" 255 $?
# A worker that misbehaves cannot hang vow map: a wrong-shaped chunk reply
# is a protocol break (the group's lines then run one by one, and with
# retries they succeed), a worker that exits leaving a process holding its
# channel is a death, and silence is bounded by --timeout. Each run ends
# with a line for every input, each a right result or an error.
seq 1 50 > hin
wrong='{ if ($0 !~ /"error"/ && $0 != 3 * NR + 1) bad++ } END { print bad + 0 }'
for f in maps_short maps_long maps_not_array fork_hold_die; do
  for r in 0 3; do
    HOSTILE_FAULT=$f timeout 60 $VOW map --worker "$HOSTILE" calc -j 2 \
      --retries $r < hin > hout 2>/dev/null
    check "hostile $f, retries $r: ends" 1 "$([ $? -ne 124 ] && echo 1)"
    check "hostile $f, retries $r: a line for each input" 50 "$(wc -l < hout | tr -d ' ')"
    check "hostile $f, retries $r: no wrong result" 0 "$(awk "$wrong" hout)"
  done
done
check "hostile fork_hold_die: every line fails" 50 "$(grep -c '"error"' hout)"
HOSTILE_FAULT=maps_long $VOW map --worker "$HOSTILE" calc --retries 3 < hin > hout 2>/dev/null
check "hostile maps_long, retries: every line right in the end" "$(seq 1 50 | awk '{print 3 * $1 + 1}')" "$(cat hout)"
seq 1 4 > hin4 # each line waits out its timeout twice (group, then alone)
for f in silent fork_hold_live; do
  HOSTILE_FAULT=$f timeout 60 $VOW map --worker "$HOSTILE" calc -j 2 \
    --timeout 0.3 < hin4 > hout 2>/dev/null
  check "hostile $f: --timeout ends it" 1 "$([ $? -ne 124 ] && echo 1)"
  check "hostile $f: every line fails" 4 "$(grep -c '"error"' hout)"
done
rm -f hin4
HOSTILE_FAULT=none $VOW map --worker "$HOSTILE" calc < hin > hout
check "the hostile worker, honest: 3x + 1" "$(seq 1 50 | awk '{print 3 * $1 + 1}')" "$(cat hout)"
rm -f hin hout

# Retries past what a pool counts are refused, not wrapped round to few.
$VOW map "$PLUGIN" echo --retries 256 2>err </dev/null
check "--retries 256: refused" 255 $?
check "--retries 256: says the range" 1 "$(grep -c 'from 0 to 255' err)"
$VOW map "$PLUGIN" echo --retries -1 2>/dev/null </dev/null
check "--retries -1: refused" 255 $?
check "--retries 255: taken" 1 "$(echo 1 | $VOW map "$PLUGIN" echo --retries 255)"
rm -f err

report
