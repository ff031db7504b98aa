#!/bin/sh
# Inputs the wire cannot carry are refused where they are read, line by
# line, with the reason; never a silent null, never a worker's death. And
# bytes that are not UTF-8, or a NUL in a line, never make the output
# invalid or cut a value without a word.
#   wire_limits_test.sh VOW_BINARY PLUGIN
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
in_tmpdir

nested() { python3 -c "import sys; n = int(sys.argv[1]); print('[' * n + ']' * n)" "$1"; }

# vow map: 27 levels go through; 28, 30 and 40 are refused, each on its
# own line; so is an array of 2 million items; the lines around succeed.
{
  echo '[1]'
  nested 27
  nested 28
  nested 30
  nested 40
  python3 -c "print('[' + ','.join(['0'] * 2000000) + ']')"
  echo '[2]'
} >deep.jsonl
$VOW map "$PLUGIN" echo <deep.jsonl >deep.out 2>deep.err
check "map: the refused lines are counted" 4 $?
check "map: 27 levels deep come back whole" "$(nested 27)" "$(sed -n 2p deep.out)"
check "map: 28, 30 and 40 levels refused, saying why" 3 \
  "$(grep -c '"error":"JSON nested more than 27 levels deep' deep.out)"
check "map: 2 million items refused, saying why" 1 \
  "$(grep -c '"line":6,"error":"JSON of 2000001 values: a task.s value may hold at most' deep.out)"
check "map: the lines around succeed" "[1]|[2]" \
  "$(sed -n 1p deep.out)|$(sed -n 7p deep.out)"
check "map: no worker died, nothing broke the protocol" "" \
  "$(grep -i 'protocol\|died\|killed' deep.err deep.out)"

# vow submit --map: refused at submit, never run with null.
S=$T/q.sock
$VOW submit --socket "$S" --map "$PLUGIN" echo "$(nested 40)" >id.txt 2>sub.err
check "submit --map 40 levels deep: refused" 255 $?
check "... says why" 1 "$(grep -c 'nested more than 27 levels deep' sub.err)"
ok=$($VOW submit --socket "$S" --map "$PLUGIN" echo "$(nested 27)")
$VOW wait --socket "$S" "$ok"
check "submit --map 27 levels deep: runs" 0 $?
check "... and its result is its argument" "$(nested 27)" \
  "$($VOW output --socket "$S" "$ok")"

# Bytes that are not UTF-8 in a job's command: vow status --json stays
# JSON (each such byte is U+FFFD).
bad=$($VOW submit --socket "$S" -- printf "$(printf 'x\377\376y')")
$VOW wait --socket "$S" "$bad"
$VOW status --socket "$S" --json "$bad" >st.json
check "status --json with bytes that are not UTF-8: valid JSON" ok \
  "$(python3 -c 'import json, sys; json.load(open(sys.argv[1])); print("ok")' st.json 2>&1)"
check "... each such byte is U+FFFD" 1 "$(grep -c 'x\\ufffd\\ufffdy' st.json)"
$VOW shutdown --socket "$S"

# A NUL in an input line (without -0): replaced by \0 and said once, as
# GNU parallel does, never cut there in silence.
printf 'a\000b\nc\000\n' | $VOW run -k printf '%s\n' >nul.out 2>nul.err
check "run: a NUL in a line becomes \\0" "a\\0b${nl}c\\0" "$(cat nul.out)"
check "run: said once" 1 "$(grep -c 'NUL character in the input was replaced' nul.err)"
if [ -n "$PAR" ]; then
  printf 'a\000b\nc\000\n' | parallel -k printf "'%s\n'" >par.out 2>/dev/null
  check "run: as GNU parallel" "$(cat par.out)" "$(cat nul.out)"
fi
printf 'echo p\000q\n' | $VOW submit --socket "$S" --stdin >nid 2>nsub.err
$VOW wait --socket "$S" "$(cat nid)"
check "submit --stdin: the line runs whole" 'p\0q' \
  "$($VOW status --socket "$S" "$(cat nid)" | awk 'NR == 2 {print $NF}' | tr -d "'")"
check "submit --stdin: said once" 1 \
  "$(grep -c 'NUL character in the input was replaced' nsub.err)"
$VOW shutdown --socket "$S"

report
