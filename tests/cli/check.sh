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

report() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
