#!/bin/sh
# vow run's inputs as GNU parallel users type them: -d, --trim, --colsep,
# --header, -N/-n/-L, -X/-m/--xargs, :::+/::::+, {} over several sources,
# --shuf and --retry-failed. Each check has its expected bytes, and where
# parallel is installed, is run through parallel -q in the same run too.
#   run_inputs_test.sh VOW_BINARY
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
in_tmpdir
skip_without_parallel

# both NAME EXPECTED ARGS...: vow run ARGS prints EXPECTED (stdout and
# stderr, then the exit status), and so does parallel -q ARGS. Stdin is
# the file $IN, or nothing.
both() {
  name=$1
  want=$2
  shift 2
  got=$($VOW run "$@" <"${IN:-/dev/null}" 2>&1; echo "status $?")
  check "$name" "$want${want:+$nl}status 0" "$got"
  if [ -n "$PAR" ]; then
    check "$name: as parallel" \
      "$(parallel --will-cite -q "$@" <"${IN:-/dev/null}" 2>&1; echo "status $?")" \
      "$got"
  fi
}

# -d DELIM, --trim.
printf 'a:b c:\\d' >colon
IN=colon both "-d :" "[a]${nl}[b c]${nl}[\\d]" -k -d : echo '[{}]'
printf 'a\tb\tc' >tabbed
IN=tabbed both "-d '\\t'" "a${nl}b${nl}c" -k -d '\t' echo
printf '  a  \n\tb\n' >spaced
IN=spaced both "--trim lr" "[a]${nl}[b]" -k --trim lr echo '[{}]'
IN=spaced both "--trim l" "[a  ]${nl}[b]" -k --trim l echo '[{}]'
IN=spaced both "--trim r" "[  a]${nl}[	b]" -k --trim r echo '[{}]'
$VOW run --trim x echo ::: a 2>err.txt
check "--trim x: refused, named" "255|1" "$?|$(grep -c 'trim wants n, l, r' err.txt)"

# --colsep RE and --header: columns as {1} {2}, or by name.
printf 'a,b\nc,d\n' >csv
IN=csv both "--colsep ," "b a${nl}d c" -k --colsep , echo {2} {1}
printf 'a  b\nc\td\n' >ws
IN=ws both "--colsep '\\s+'" "b-a${nl}d-c" -k --colsep '\s+' echo {2}-{1}
printf 'x,y\na,b\nc,d\n' >named
IN=named both "--header : --colsep ," "b a${nl}d c" -k --header : --colsep , echo {y} {x}
IN=csv both "--colsep , past the columns" "a-b-${nl}c-d-" -k --colsep , echo {1}-{2}-{3}
printf 'a,b\n' >f1
printf 'c,d\n' >f2
both "--colsep over two files" "a b c d" -k --colsep , echo {1} {2} {3} {4} :::: f1 f2

# -N / -n / -L: N values a job.
both "-N2" "a-b${nl}c-d${nl}e-" -k -N2 echo {1}-{2} ::: a b c d e
both "-N2, no replacement: appended" "a b${nl}c d${nl}e" -k -N2 echo ::: a b c d e
both "-n 3" "1 2 3${nl}4" -k -n 3 echo ::: 1 2 3 4
printf 'l1\nl2\nl3\n' >lines
IN=lines both "-L 2" "l1 l2${nl}l3" -k -L 2 echo
both "-N0: a job a value, none inserted" "x${nl}x" -k -N0 echo x ::: a b
both "-N2 with two sources" "1 a 1 b${nl}2 a 2 b" -k -N2 echo ::: 1 2 ::: a b
$VOW run -N x echo ::: a 2>err.txt
check "-N x: refused, named" "255|1" "$?|$(grep -c '\-N wants a count' err.txt)"

# -X, -m, --xargs: as many values a job as a command line holds.
both "-X: the word again for each value" "preapost prebpost precpost" \
  -k -j1 -X echo pre{}post ::: a b c
both "-m: the values inside one word" "prea b cpost" -k -j1 -m echo pre{}post ::: a b c
both "--xargs" "a b c" -k -j1 --xargs echo ::: a b c
both "-X spreads the last values over 2 slots" "1 2 3 4 5${nl}6 7 8 9 10" \
  -k -j2 -X echo ::: 1 2 3 4 5 6 7 8 9 10
both "-X {.}: each value its own word" "a1b a2b" -k -j1 -X echo a{.}b ::: 1.c 2.c
both "-X {} over two sources: each value its own word" \
  "a1b axb a1b ayb a2b axb${nl}a2b ayb a3b axb a3b ayb" \
  -k -X echo a{}b ::: 1 2 3 ::: x y
# A command line holds what GNU parallel puts in one, by its measure:
# without a shell (parallel -q) it counts three times the values' length
# against its budget, so 20,000 values make five full lines, then the
# rest spread over the 2 slots; with --shell (parallel without -q) the
# values as the shell sees them, so 12,460 make one line.
seq 20000 >many
$VOW run -k -j2 -X echo <many >x.out
check "-X fills command lines as parallel -q does" \
  "4464 21212${nl}4243 21214${nl}3751 21213${nl}3536 21215${nl}3536 21215${nl}235 1409${nl}235 1409" \
  "$(awk '{print NF, length($0)}' x.out)"
$VOW run --shell -k -j2 -X echo <many >xs.out
check "-X --shell fills command lines as parallel does" \
  "12460 63653${nl}3770 22619${nl}3770 22619" \
  "$(awk '{print NF, length($0)}' xs.out)"
if [ -n "$PAR" ]; then
  check "-X fills command lines: as parallel -q" \
    "$(parallel --will-cite -q -k -j2 -X echo <many | cksum)" "$(cksum <x.out)"
  check "-X --shell fills command lines: as parallel" \
    "$(parallel --will-cite -k -j2 -X echo <many | cksum)" "$(cksum <xs.out)"
  check "--xargs: as many lines as parallel -q" \
    "$(parallel --will-cite -q --xargs echo <many | wc -l)" \
    "$($VOW run --xargs echo <many | wc -l)"
fi
both "-X with {#}: the job number once" "1 a b" -k -j1 -X echo {#} {} ::: a b

# :::+ and ::::+ pair with the source before them; ::: combines.
both ":::+" "a 1 x${nl}a 1 y${nl}b 2 x${nl}b 2 y" -k echo ::: a b :::+ 1 2 ::: x y
printf '1\n2\n3\n' >nums
both "::::+ (the shorter wraps? no: it stops)" "a 1${nl}b 2" -k echo ::: a b ::::+ nums
both ":::+ shorter list" "a 1${nl}b 2" -k echo ::: a b c :::+ 1 2
both "--link wraps" "a 1${nl}b 2${nl}c 1" -k --link echo ::: a b c ::: 1 2

# {} with several sources: each value a separate argument, as parallel -q.
both "{} over two sources: separate arguments" "[a]${nl}[x]${nl}[b]${nl}[x]" \
  -k printf '[%s]\n' {} ::: a b ::: x
both "{.} over two sources" "[a]${nl}[x]" -k printf '[%s]\n' {.} ::: a.c ::: x.d

# --shuf: every job once, in an order of its own.
out=$($VOW run --shuf -j1 echo ::: $(seq 50))
check "--shuf runs every job once" "$(seq 50)" "$(printf '%s\n' "$out" | sort -n)"
check "--shuf changes the order" 1 "$([ "$out" != "$(seq 50)" ] && echo 1)"

# --retry-failed: the joblog's failed commands, run again; those that
# succeed are logged so, the command line is not used.
$VOW run --joblog jl sh -c 'exit {}' ::: 0 1 2 >/dev/null 2>&1
$VOW run --joblog jl --retry-failed echo unused ::: z >/dev/null 2>&1
check "--retry-failed: status, the failed ones failing again" 2 $?
check "--retry-failed: what ran, logged" "2 sh -c 'exit 1'${nl}3 sh -c 'exit 2'" \
  "$(tail -n +5 jl | cut -f1,9 | tr '\t' ' ' | sort)"
if [ -n "$PAR" ]; then
  parallel --will-cite -q --joblog pjl sh -c 'exit {}' ::: 0 1 2 >/dev/null 2>&1
  parallel --will-cite --joblog pjl --retry-failed echo unused ::: z >/dev/null 2>&1
  check "--retry-failed: the status parallel gives" $? 2
  check "--retry-failed: the joblog parallel writes" \
    "$(tail -n +2 pjl | cut -f1,7,8,9 | sort)" "$(tail -n +2 jl | cut -f1,7,8,9 | sort)"
fi
$VOW run --retry-failed echo ::: a 2>err.txt
check "--retry-failed without --joblog: refused" "255|1" \
  "$?|$(grep -c 'retry-failed needs --joblog' err.txt)"

report
