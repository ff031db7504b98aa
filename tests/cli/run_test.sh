#!/bin/sh
# vow run, driven for real: inputs, replacement strings, ordering, output
# grouping, joblog, resume, retries, timeouts, halts, signals, injection.
#   run_test.sh VOW_BINARY
set -u
# Jobs that must be found with pgrep sleep odd lengths (29.813, 60.731,
# ...): another test's or the machine's `sleep 30` is never taken for one.
. "$(dirname "$0")/check.sh"
VOW=$1
in_tmpdir

# Inputs and replacement strings.
check "::: list" "a${nl}b${nl}c" "$($VOW run -k echo ::: a b c)"
check "product, first slowest" "1 x${nl}1 y${nl}2 x${nl}2 y" \
  "$($VOW run -k echo ::: 1 2 ::: x y)"
check "--link wraps" "1 x${nl}2 y${nl}3 x" \
  "$($VOW run -k --link echo ::: 1 2 3 ::: x y)"
check "replacements" "/a/b/c.txt /a/b/c c.txt /a/b c 1 1" \
  "$($VOW run -j1 echo {} {.} {/} {//} {/.} {#} {%} ::: /a/b/c.txt)"
check "{n}" "y-1" "$($VOW run echo {2}-{1} ::: 1 ::: y)"
check "inside a word" "pre-a.out" "$($VOW run echo pre-{.}.out ::: a.txt)"
printf 'l1\nl2\n' > list.txt
check ":::: file" "l1${nl}l2" "$($VOW run -k echo :::: list.txt)"
check "stdin" "s1${nl}s2" "$(printf 's1\ns2\n' | $VOW run -k echo)"
check "-0" "a b${nl}c" "$(printf 'a b\0c\0' | $VOW run -k -0 echo)"
check "empty input" "" "$($VOW run echo ::: </dev/null)"
$VOW run echo ::: </dev/null
check "empty input status" 0 $?

# No shell: each word stays one argument.
$VOW run sh -c 'exit {}' ::: 3
check "sh -c 'exit {}' ::: 3" 1 $?
check "no shell: injection inert" "a; echo INJ${nl}\$(echo X)${nl}\`id\`" \
  "$($VOW run -k echo {} ::: 'a; echo INJ' '$(echo X)' '`id`')"
check "--shell quotes inputs" "a; echo INJ${nl}\$(echo X)${nl}x${nl}y" \
  "$($VOW run -k --shell echo {} ::: 'a; echo INJ' '$(echo X)' "x${nl}y" | head -4)"
check "leading dash is an argument" "-n" "$($VOW run -k printf '%s\n' ::: -n)"
check "--dry-run" "sh -c 'exit 3'${nl}sh -c 'exit a b'" \
  "$($VOW run --dry-run sh -c 'exit {}' ::: 3 'a b')"

# Order: -k keeps input order whatever finishes first.
check "-k order" "3${nl}1${nl}2" \
  "$($VOW run -k -j3 sh -c 'sleep 0.{}; echo {}' ::: 3 1 2)"
check "completion order" "1${nl}2${nl}3" \
  "$($VOW run -j3 sh -c 'sleep 0.{}; echo {}' ::: 3 1 2)"
check "--tag" "a	hi a${nl}b	hi b" "$($VOW run -k --tag echo hi ::: a b)"

# No interleaving: two jobs write 2 MB each in small pieces at once.
$VOW run -j2 sh -c 'i=0; while [ $i -lt 20000 ]; do echo {}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}; i=$((i+1)); done' ::: A B > big.out
check "no interleaving" 2 "$(uniq big.out | wc -l | tr -d ' ')"
check "all output" 40000 "$(wc -l < big.out | tr -d ' ')"

# Output past the memory limit spills to a private directory (mode 700,
# files unlinked at once) and is copied out through a fixed buffer: --tag
# still tags every line, and 200 MB through vow leave its peak RSS small.
mkdir spilltmp
out=$(TMPDIR=$PWD/spilltmp $VOW run sh -c 'seq 300000; stat -c %a "$TMPDIR"/vow-*' ::: a)
check "spill directory mode" 700 "$(printf '%s\n' "$out" | tail -1)"
check "spill keeps every line" 300001 "$(printf '%s\n' "$out" | wc -l | tr -d ' ')"
check "spill: no file left" "" "$(find spilltmp -type f)"
check "--tag across spill pieces" "300000 0" \
  "$($VOW run --tag seq {} 300000 ::: 1 | awk -F'\t' '$1 == "1" {t++} $1 != "1" {u++} END {print t + 0, u + 0}')"
hwm=$(TMPDIR=$PWD/spilltmp PEAK_OUT=big.out peak_kb $VOW run sh -c 'head -c 200000000 /dev/zero' ::: a)
check "200 MB of output" 200000000 "$(wc -c < big.out | tr -d ' ')"
check_rss "peak RSS under 64 MB for 200 MB of output" 65536 "$hwm"
rm -f big.out

# Joblog, resume, retries.
$VOW run --joblog jl -k sh -c 'exit {}' ::: 0 1 0 > /dev/null
check "joblog status" 1 $?
check "joblog header" "Seq	Host	Starttime	JobRuntime	Send	Receive	Exitval	Signal	Command" \
  "$(head -1 jl)"
check "joblog exitvals" "0${nl}1${nl}0" "$(tail -n +2 jl | sort -n | cut -f7)"
check "joblog columns" 9 "$(tail -1 jl | awk -F'\t' '{print NF}')"
$VOW run --joblog jl --resume -k sh -c 'echo ran {}; exit {}' ::: 0 1 0 > out
check "--resume runs nothing done" "" "$(cat out)"
$VOW run --joblog jl --resume-failed -k sh -c 'echo ran {}; exit 0' ::: 0 1 0 > out
check "--resume-failed reruns failed" "ran 1" "$(cat out)"
rm -f cnt
$VOW run --retries 3 sh -c 'echo x >> cnt; exit 1' ::: a
check "--retries exit" 1 $?
check "--retries tries" 3 "$(wc -l < cnt | tr -d ' ')"
rm -f cnt
$VOW run --retries 3 sh -c 'echo x >> cnt; [ $(wc -l < cnt) -ge 2 ]' ::: a
check "--retries until success" 0 $?
# A job is over when its process exits: what it wrote is in, and a
# background process it left holding stdout holds neither the run nor its
# output (GNU parallel drops that late output too).
s=$(date +%s%N)
check "background holder: output before exit" "early|early-err" \
  "$($VOW run --retries 2 sh -c 'echo early; echo early-err >&2; (sleep 3; echo late) & exit 3' ::: b 2>e.txt)|$(cat e.txt)"
check "background holder: vow does not wait for it" 1 \
  $(( ($(date +%s%N) - s) / 1000000 < 2900 ))
lost=0
for n in $(seq 10); do
  out=$($VOW run --retries 2 sh -c 'echo try; echo err >&2; exit 3' ::: b 2>&1)
  [ "$out" = "try${nl}err" ] || [ "$out" = "err${nl}try" ] || lost=$((lost + 1))
done
check "--retries: the last try's output, 10 of 10" 0 "$lost"
long=$(printf '%010000d' 7)
$VOW run --joblog longjl -k sh -c 'exit 0' ::: "$long" b > /dev/null
$VOW run --joblog longjl --resume -k echo ran ::: "$long" b > out
check "--resume after a 10,000-byte command: status" 0 $?
check "--resume after a 10,000-byte command: nothing rerun" "" "$(cat out)"
printf 'garbage\n' > badlog
$VOW run --joblog badlog --resume echo ::: a 2> err
check "bad joblog" 255 $?

# Timeout kills the whole job, children included, even ignoring TERM.
start=$(date +%s)
$VOW run --timeout 0.5 sh -c 'trap "" TERM; (trap "" TERM; sleep 29.813) & sleep 29.813' ::: a
check "--timeout status" 1 $?
check "--timeout is prompt" 1 "$([ $(( $(date +%s) - start )) -lt 10 ] && echo 1)"
sleep 0.3
check "--timeout kills children" 0 "$(count_mine 'sleep 29.813')"

# Halt.
$VOW run -j2 --halt now,fail=1 sh -c 'sleep {}; exit 4' ::: 0.1 5.129 2>/dev/null
check "--halt now,fail=1 status" 4 $?
check "--halt now kills the rest" 0 "$(count_mine 'sleep 5.129')"
out=$($VOW run -j1 --halt soon,fail=1 sh -c 'echo {}; exit 2' ::: a b c 2>/dev/null)
check "--halt soon,fail=1 status" "2" "$?"
check "--halt soon starts nothing more" "a" "$out"
$VOW run -j1 --halt now,success=1 sh -c 'exit {}' ::: 1 0 1 2>/dev/null
check "--halt now,success=1" 0 $?
# Exit statuses after --halt, as GNU parallel 20221122 gives them for
# jobs exiting 0 3 4 0 5 one at a time: the failing job's status with
# fail=1, the number failed at the halt with fail=N and done=N, the
# percentage failed (rounded up) with N%, 0 with success=; and the old
# forms 0, 1, 2, -1, -2 and N%.
halts="now,fail=1:3 soon,fail=1:3 now,fail=2:2 soon,fail=2:2 now,fail=50%:60
soon,fail=30%:40 now,success=1:0 soon,success=2:0 now,done=2:1 soon,done=1:0
now,done=50%:40 2:3 1:3 -1:0 -2:0 30%:40 0:3"
for hw in $halts; do
  h=${hw%:*}
  $VOW run -j1 --halt "$h" sh -c 'exit {}' ::: 0 3 4 0 5 >/dev/null 2>&1
  check "--halt $h: parallel's status" "${hw##*:}" $?
  if command -v parallel >/dev/null 2>&1; then
    parallel --will-cite -q -j1 --halt "$h" sh -c 'exit {}' ::: 0 3 4 0 5 >/dev/null 2>&1
    p=$?
    $VOW run -j1 --halt "$h" sh -c 'exit {}' ::: 0 3 4 0 5 >/dev/null 2>&1
    check "--halt $h: as parallel in this run" "$p" $?
  fi
done
# soon: jobs still running finish, but the status counts the failures
# when the halt was decided (2 here, though a third job fails after).
$VOW run -j3 --halt soon,fail=2 sh -c 'sleep 0.{}; exit {}' ::: 1 2 3 4 5 >/dev/null 2>&1
check "--halt soon,fail=2 with jobs still running" 2 $?
$VOW run -j3 --halt soon,fail=20% sh -c 'sleep 0.{}; exit {}' ::: 1 2 3 4 5 6 7 8 9 >/dev/null 2>&1
check "--halt soon,fail=20%: 2 of 9, rounded up" 23 $?

# Exit statuses.
$VOW run sh -c 'exit 1' ::: 1 2 3 4 5
check "failed count" 5 $?
$VOW run --no-such-option echo ::: a 2>/dev/null
check "bad option" 255 $?
$VOW run echo :::: /nonexistent 2>/dev/null
check "unreadable input" 255 $?
check "bad option message" "vow: unknown option --bogus (see vow run --help)" \
  "$($VOW run --bogus echo 2>&1)"

# SIGINT mid-run: jobs get it, the joblog has what finished, 130.
$VOW run -j2 --joblog sigjl sh -c 'sleep {}' ::: 0.1 29.813 29.813 &
pid=$!
sleep 1
kill -INT $pid
wait $pid
check "SIGINT status" 130 $?
check "SIGINT joblog" 1 "$(tail -n +2 sigjl | cut -f7 | grep -c '^0$')"
sleep 0.3
check "SIGINT leaves no jobs" 0 "$(count_mine 'sleep 29.813')"

# SIGHUP (the terminal went away), as GNU parallel takes it: nothing new
# starts, the running jobs finish (their output kept), the status is the
# run's own (0 here); a SIGTERM after it stops them at once.
$VOW run -j2 sh -c 'sleep {}; echo done {}' ::: 1.251 1.251 3 4 >hup.out 2>hup.err &
pid=$!
await_mine 'sleep 1.251' 2
kill -HUP $pid
wait $pid
check "SIGHUP status: the run's own" 0 $?
check "SIGHUP: the running jobs finish, nothing new starts" \
  "done 1.251${nl}done 1.251" "$(cat hup.out)"
check "SIGHUP: said on stderr" 1 "$(grep -c 'SIGHUP received' hup.err)"
$VOW run -j2 sh -c 'sleep {}' ::: 29.851 29.851 &
pid=$!
await_mine 'sleep 29.851' 2
kill -HUP $pid
sleep 0.2
kill -TERM $pid
wait $pid
check "SIGHUP then SIGTERM: status" 143 $?
sleep 0.3
check "SIGHUP then SIGTERM leaves no jobs" 0 "$(count_mine 'sleep 29.851')"

# Slots, -j forms, --line-buffer, percent timeouts, --bar off a terminal.
check "{%} slots" "1${nl}2" "$($VOW run -j2 sh -c 'sleep 0.2; echo {%}' ::: a b | sort)"
for j in 0 50% +1 -1 3; do
  check "-j $j" "a${nl}b" "$($VOW run -k -j $j echo ::: a b)"
done
$VOW run -j x echo ::: a 2>/dev/null
check "-j bad" 255 $?
check "--line-buffer whole lines" "x1${nl}x2${nl}y1" \
  "$($VOW run --line-buffer -j2 sh -c 'echo {}1; sleep 0.3; echo {}2' ::: x y 2>/dev/null | sort | head -3)"
$VOW run -j1 --timeout 300% sh -c 'sleep {}' ::: 0.1 0.1 0.1 3 2>/dev/null
check "--timeout N% of the median" 1 $?
check "--bar off a terminal" "a" "$($VOW run --bar echo ::: a 2>&1)"

# What GNU parallel users type: bundled single-letter options, -P, -q,
# --will-cite, $PARALLEL_SEQ and $PARALLEL_JOBSLOT; a letter vow lacks is
# refused by name. Side by side with parallel -q where it is installed.
check "-kj2 bundled" "a${nl}b${nl}c" "$($VOW run -kj2 echo ::: a b c)"
check "-k -P 2" "a${nl}b" "$($VOW run -k -P 2 echo ::: a b)"
check "-P2" "a" "$($VOW run -P2 echo ::: a)"
check "-q and --will-cite accepted" "x" "$($VOW run -q --will-cite echo ::: x)"
check "\$PARALLEL_SEQ and \$PARALLEL_JOBSLOT" "1-1-a${nl}2-1-b${nl}3-1-c" \
  "$($VOW run -k -j1 sh -c 'echo $PARALLEL_SEQ-$PARALLEL_JOBSLOT-$0' ::: a b c)"
check "slots in \$PARALLEL_JOBSLOT" "1${nl}2" \
  "$($VOW run -j2 sh -c 'sleep 0.2; echo $PARALLEL_JOBSLOT' ::: a b | sort)"
$VOW run -kz echo ::: a 2>err.txt
check "an unknown bundled letter: status" 255 $?
check "an unknown bundled letter: named" 1 "$(grep -c 'unknown option -z in -kz' err.txt)"
$VOW run --nonsense echo ::: a 2>err.txt
check "an unknown long option: named, not taken as input" 1 \
  "$(grep -c 'unknown option --nonsense' err.txt)"
if command -v parallel >/dev/null 2>&1; then
  check "as parallel -q: -kj2" "$(parallel --will-cite -q -kj2 echo ::: a b c)" \
    "$($VOW run -kj2 echo ::: a b c)"
  check "as parallel -q: -k -P 2" "$(parallel --will-cite -q -k -P 2 echo ::: a b c d)" \
    "$($VOW run -k -P 2 echo ::: a b c d)"
  seqslot='echo $PARALLEL_SEQ-$PARALLEL_JOBSLOT-$0'
  check "as parallel -q: \$PARALLEL_SEQ, \$PARALLEL_JOBSLOT" \
    "$(parallel --will-cite -q -k -j1 sh -c "$seqslot" ::: a b c)" \
    "$($VOW run -k -j1 sh -c "$seqslot" ::: a b c)"
  parallel --will-cite -kz echo ::: a >/dev/null 2>&1
  p=$?
  $VOW run -kz echo ::: a >/dev/null 2>&1
  check "unknown option: the status parallel gives" "$p" $?
else
  echo "skip: GNU parallel is not installed (side-by-side checks)"
fi

# -a FILE / --arg-file FILE: input sources of their own, before those
# after the command, as in GNU parallel; bundled too (-ka FILE).
printf 'f1\nf2\n' > af
printf 'g1\n' > ag
check "-a with :::" "f1 x${nl}f1 y${nl}f2 x${nl}f2 y" "$($VOW run -k -a af echo ::: x y)"
check "-a twice" "f1 g1${nl}f2 g1" "$($VOW run -k -a af -a ag echo)"
check "--arg-file" "f1${nl}f2" "$($VOW run -k --arg-file af echo)"
check "-a with ::::" "f1 g1${nl}f2 g1" "$($VOW run -k -a af echo :::: ag)"
check "-ka FILE" "f1${nl}f2" "$($VOW run -ka af echo)"
check "-a -: stdin" "s1" "$(echo s1 | $VOW run -a - echo)"
$VOW run -a /nonexistent/x echo 2>err.txt
check "-a a missing file: status" 255 $?
check "-a a missing file: named" 1 "$(grep -c 'cannot read input file /nonexistent/x' err.txt)"
if command -v parallel >/dev/null 2>&1; then
  check "-a as parallel" "$(parallel --will-cite -q -k -a af -a ag echo ::: x y)" \
    "$($VOW run -k -a af -a ag echo ::: x y)"
fi

# --workdir / --wd DIR: jobs run there, made (parents too) when missing.
check "--workdir" "/usr" "$($VOW run --workdir /usr sh -c pwd ::: x)"
check "--wd made when missing" "$PWD/wd/a/b" "$($VOW run --wd "$PWD/wd/a/b" sh -c pwd ::: x)"
touch wdfile
$VOW run --wd "$PWD/wdfile" sh -c pwd ::: x 2>err.txt
check "--wd at a file: refused" "255|1" "$?|$(grep -c 'not a directory' err.txt)"
if command -v parallel >/dev/null 2>&1; then
  check "--wd as parallel" "$(parallel --will-cite -q --wd "$PWD/wd2" sh -c pwd ::: x)" \
    "$($VOW run --wd "$PWD/wd2" sh -c pwd ::: x)"
fi

# --delay S: starts at least S apart, whatever -j allows. The starts are
# vow's own, from its joblog (in ms): when a job's process gets to run
# after its start is the host's business.
$VOW run -j4 --delay 0.3 --joblog delay.log true ::: 1 2 3
gaps=$(tail -n +2 delay.log | cut -f3 | sort -n |
  awk 'NR > 1 && $1 - p < 0.299 { short++ } { p = $1 } END { print short + 0 }')
check "--delay 0.3: no two starts closer" 0 "$gaps"
$VOW run --delay soon true ::: x 2>/dev/null
check "--delay bad: refused" 255 $?

# --nice N: the jobs' niceness, vow's own untouched.
check "--nice 7" "$(($(nice) + 7))" "$($VOW run --nice 7 sh -c nice ::: x)"
$VOW run --nice 40 true ::: x 2>err.txt
check "--nice out of range: refused" "255|1" "$?|$(grep -c 'niceness from -20 to 19' err.txt)"
if command -v parallel >/dev/null 2>&1; then
  check "--nice as parallel" "$(parallel --will-cite -q --nice 5 sh -c nice ::: x)" \
    "$($VOW run --nice 5 sh -c nice ::: x)"
fi

# --tagstring STR: the tag with its replacement strings made.
check "--tagstring" "<a-1>	hi a${nl}<b-2>	hi b" \
  "$($VOW run -k --tagstring '<{}-{#}>' echo hi ::: a b)"
if command -v parallel >/dev/null 2>&1; then
  check "--tagstring as parallel" \
    "$(parallel --will-cite -q -k -j1 --tagstring '{%}:{.}' echo x ::: a.c b.c)" \
    "$($VOW run -k -j1 --tagstring '{%}:{.}' echo x ::: a.c b.c)"
fi

# A pipe typed without --shell runs as parallel -q would (the | is an
# argument), with a hint on stderr; with --shell it is a pipe.
check "a | without --shell: passed as a word" "a | tr a b" \
  "$($VOW run echo {} '|' tr a b ::: a 2>err.txt)"
check "... with a hint to use --shell" 1 "$(grep -c 'hint:.*add --shell' err.txt)"
$VOW run 'sort | uniq' ::: a >/dev/null 2>err.txt
check "a whole pipeline as one word: the hint" 1 "$(grep -c 'hint:.*--shell' err.txt)"
check "--shell: a pipe, and no hint" "b|0" \
  "$($VOW run --shell echo {} '|' tr a b ::: a 2>err.txt)|$(grep -c hint err.txt)"
check "no hint for an ordinary command" 0 "$($VOW run echo ::: a 2>&1 >/dev/null | grep -c hint)"

# Help and version.
$VOW --version | grep -q '^vow [0-9]' && check "--version" ok ok
$VOW run --help | grep -q 'usage: vow run' && check "run --help" ok ok

report
