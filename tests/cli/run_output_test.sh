#!/bin/sh
# vow run's output and its life as a process: --results, -u, -k with
# --line-buffer, the joblog of killed jobs, progress on a terminal, input
# streamed as it arrives, memory bounds, a closed stdout, --load and
# --memfree. Side by side with GNU parallel where it is installed.
#   run_output_test.sh VOW_BINARY
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
in_tmpdir
skip_without_parallel

# --results DIR: GNU parallel's layout, DIR/1/VALUE/2/VALUE/{stdout,
# stderr,seq}; --header's names in place of the numbers; a path with
# replacement strings names the files themselves.
job='echo out {1}; echo err {2} >&2'
$VOW run --results res sh -c "$job" ::: a 'b/c' ::: x >out.txt
check "--results: nothing on stdout" "" "$(cat out.txt)"
check "--results: the tree" \
  "res/1/a/2/x/seq res/1/a/2/x/stderr res/1/a/2/x/stdout res/1/b\\_c/2/x/seq res/1/b\\_c/2/x/stderr res/1/b\\_c/2/x/stdout" \
  "$(find res -type f | sort | tr '\n' ' ' | sed 's/ $//')"
check "--results: the files" "out a|err x|2" \
  "$(cat res/1/a/2/x/stdout)|$(cat res/1/a/2/x/stderr)|$(cat 'res/1/b\_c/2/x/seq')"
printf 'p\tq\n1\t2\n' >hdr
$VOW run --header : --colsep '\t' --results hres echo <hdr
check "--results with --header: names" "hres/p/1/q/2/stdout" \
  "$(find hres -name stdout)"
$VOW run --results 'named/{}.txt' echo ::: a >/dev/null
check "--results PATH{}: the files themselves" "named/a.txt named/a.txt.err named/a.txt.seq" \
  "$(find named -type f | sort | tr '\n' ' ' | sed 's/ $//')"
check "--results: no value leaves DIR" "" \
  "$($VOW run --results dots echo ::: .. >/dev/null; find . -maxdepth 1 -name 2)"
if [ -n "$PAR" ]; then
  parallel --will-cite -q --results pres sh -c "$job" ::: a 'b/c' ::: x >/dev/null
  check "--results: the tree parallel makes" \
    "$(cd pres && find . | sort; cat 1/a/2/x/stdout 1/a/2/x/seq)" \
    "$(cd res && find . | sort; cat 1/a/2/x/stdout 1/a/2/x/seq)"
  parallel --will-cite --header : --colsep '\t' --results phres echo <hdr
  check "--results with --header: as parallel" \
    "$(cd phres && find . | sort)" "$(cd hres && find . | sort)"
fi

# -u: jobs write straight to our stdout, so their lines interleave.
check "-u: output as it comes" "a1${nl}b1" \
  "$($VOW run -u -j2 sh -c 'echo {}1; sleep 0.5; echo {}2' ::: a b | head -2 | sort)"
check "grouped without -u: one job's lines together" 1 \
  "$($VOW run -j2 sh -c 'echo {}1; sleep 0.5; echo {}2' ::: a b | head -2 | cut -c1 | uniq | wc -l | tr -d ' ')"

# -k --line-buffer: the first job's lines as they come, then the next
# job's, never mixed; as parallel -k --line-buffer.
lb="$($VOW run -k --line-buffer -j3 sh -c 'echo {}-1; sleep 0.{}; echo {}-2' ::: 3 1 2)"
check "-k --line-buffer: input order" "3-1${nl}3-2${nl}1-1${nl}1-2${nl}2-1${nl}2-2" "$lb"
if [ -n "$PAR" ]; then
  check "-k --line-buffer: as parallel" \
    "$(parallel --will-cite -q -k --line-buffer -j3 sh -c 'echo {}-1; sleep 0.{}; echo {}-2' ::: 3 1 2)" \
    "$lb"
fi
# ... and the first job's lines are out before it ends.
$VOW run -k --line-buffer -j2 sh -c 'echo {}; sleep {}' ::: 2 0.1 >lbo &
pid=$!
sleep 1
check "-k --line-buffer: the running first job's line is out" "2" "$(cat lbo)"
wait $pid

# -k with --retries: a job printed next is not passed through while it may
# run again, so only its last try shows.
rm -f cnt
check "-k --retries: the last try's output alone" "try 3" \
  "$($VOW run -k --retries 3 sh -c 'echo x >>cnt; echo try $(wc -l <cnt); [ $(wc -l <cnt) -ge 3 ]' ::: a)"

# The joblog: a job killed by its own signal has exit value 0 and the
# signal; one vow killed for --timeout, -1; a job --halt now ended is not
# logged, so --resume runs it again. Receive counts every byte of a -k job
# that wrote before its turn came.
$VOW run --joblog jl sh -c 'kill -9 $$' ::: a
check "own signal: status" 1 $?
check "own signal: logged as parallel logs it" "0	9" "$(tail -1 jl | cut -f7,8)"
$VOW run --joblog tl --timeout 0.3 sleep ::: 5 2>/dev/null
check "--timeout: logged -1 and TERM" "-1	15" "$(tail -1 tl | cut -f7,8)"
$VOW run -j3 --joblog hl --halt now,fail=1 sh -c 'sleep {}; exit 1' ::: 0.2 7.31 7.31 2>/dev/null
check "--halt now: the jobs it ended are not logged" "1	1" "$(tail -n +2 hl | cut -f1,7)"
$VOW run -j3 --joblog hl --resume sh -c 'echo {}' ::: 0.2 7.31 7.31 >ran
check "--resume after --halt now: the ended jobs run" "7.31${nl}7.31" "$(cat ran)"
$VOW run -k -j3 --joblog rl sh -c 'echo early{}; sleep 0.{}; echo late{}' ::: 5 1 9 >/dev/null
check "-k: Receive counts what came before the job's turn" "1 13${nl}2 13${nl}3 13" \
  "$(tail -n +2 rl | cut -f1,6 | tr '\t' ' ' | sort)"
if [ -n "$PAR" ]; then
  # (parallel runs each job under its parent's shell: bash execs the command,
  # so the job's own signal reaches parallel, as it reaches vow)
  PARALLEL_SHELL=/bin/bash parallel --will-cite -q --joblog pjl sh -c 'kill -9 $$' ::: a
  check "own signal: the status parallel gives" 1 $?
  check "own signal: the joblog line parallel writes" "$(tail -1 pjl | cut -f7-)" \
    "$(tail -1 jl | cut -f7-)"
  parallel --will-cite -q -j3 --joblog phl --halt now,fail=1 sh -c 'sleep {}; exit 1' ::: 0.2 7.32 7.32 2>/dev/null
  check "--halt now: logged as parallel" "$(tail -n +2 phl | cut -f1,7)" \
    "$(sed -n 2p hl | cut -f1,7)"
fi

# Progress on a terminal: a bar redrawn in place on stderr, erased before
# any job output, so every output line arrives whole; nothing off a tty.
if command -v script >/dev/null 2>&1; then
  script -qc "$VOW run --bar -j2 sh -c 'sleep 0.3; echo line{}' ::: 1 2 3 4 5 6" /dev/null >tty.txt
  check "--bar: redrawn in place, reaching 100%" 1 "$(grep -c '100% 6:0=' tty.txt)"
  check "--bar: every output line whole, progress never inside one" \
    "line1 line2 line3 line4 line5 line6" \
    "$(tr '\r' '\n' <tty.txt | sed 's/\x1b\[K//g' | grep '^line' | sort | tr '\n' ' ' | sed 's/ $//')"
  check "--bar: nothing else on an output line" 0 \
    "$(tr '\r' '\n' <tty.txt | sed 's/\x1b\[K//g' | grep 'line' | grep -vc '^line[0-9]$')"
  script -qc "$VOW run --eta -j2 sleep ::: 0.3 0.3 0.3" /dev/null >tty.txt
  check "--eta on a terminal" 1 "$([ "$(grep -c 'ETA: [0-9]*s Left: 0' tty.txt)" -ge 1 ] && echo 1)"
  script -qc "$VOW run --progress -j2 sleep ::: 0.3 0.3 0.3" /dev/null >tty.txt
  check "--progress on a terminal" 1 "$([ "$(grep -c 'local:0/3/100%' tty.txt)" -ge 1 ] && echo 1)"
else
  echo "skip: script(1) is not installed (progress on a terminal)"
fi
check "--bar off a terminal: stderr silent" "a|" \
  "$($VOW run --bar echo ::: a 2>err.txt)|$(cat err.txt)"

# Input is streamed: a job starts as its line arrives, not at EOF (the
# next line is sent only once the first job's output is out).
rm -f starts
(echo a; await_output starts >seen; echo b) | $VOW run echo >starts
check "stdin: the first job starts before the input ends" "1|a b" \
  "$(cat seen)|$(tr '\n' ' ' <starts | sed 's/ $//')"
mkfifo fifo
rm -f starts
(echo a; await_output starts >seen; echo b) >fifo &
$VOW run echo :::: fifo >starts
wait
check ":::: FIFO: the first job starts before the input ends" "1|a b" \
  "$(cat seen)|$(tr '\n' ' ' <starts | sed 's/ $//')"
# ... with memory bounded by the window, not the input: 10M lines.
seq 10000000 >big.txt
$VOW run -j2 sleep 5.417 :::: big.txt >/dev/null &
pid=$!
sleep 1.5
kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
kill $pid
wait $pid
check_rss "10M inputs from a file: peak RSS under 16 MB" 16384 "$kb"
cat big.txt | $VOW run -j2 sleep 5.418 >/dev/null &
sleep 1.5
pid=$(mine 'run -j2 sleep 5.418' | tail -1)
kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
kill $pid
wait
check_rss "10M inputs on stdin: peak RSS under 16 MB" 16384 "$kb"
rm -f big.txt

# -k with a slow first job: the others' output is parked in a file, not
# memory (200 jobs of 900 kB held 179 MB before; GNU parallel, 20 MB).
kb=$(peak_kb $VOW run -k -j8 sh -c '[ {} = 1 ] && sleep 2; head -c 900000 /dev/zero' ::: $(seq 200))
check_rss "-k, slow first job, 200 x 900 kB: peak RSS under 32 MB" 32768 "$kb"
check "-k, slow first job: every byte, in order" "180000000" \
  "$($VOW run -k -j8 sh -c '[ {} = 1 ] && sleep 1; head -c 900000 /dev/zero' ::: $(seq 200) | wc -c | tr -d ' ')"

# A closed stdout (| head): no more jobs start, and vow ends as parallel
# does, by SIGPIPE.
( seq 1000 | $VOW run -j2 sh -c 'echo {} >>started; echo {}; sleep 0.01'
  echo $? >status ) | head -3 >/dev/null
sleep 0.3
check "| head: vow ends by SIGPIPE" 141 "$(cat status)"
check "| head: no more jobs started" 1 "$([ "$(wc -l <started)" -lt 50 ] && echo 1)"
if [ -n "$PAR" ]; then
  ( seq 1000 | parallel --will-cite -q -j2 sh -c 'echo {}; sleep 0.01'
    echo $? >pstatus ) | head -3 >/dev/null
  check "| head: the status parallel gives" "$(cat pstatus)" "$(cat status)"
fi

# A closed stdin, stdout or stderr is not a crash: vow runs as if it were
# /dev/null, as GNU parallel does (it exits 0 all three ways).
check "stdin closed" "a${nl}0" "$($VOW run echo ::: a <&-; echo "$?")"
$VOW run echo ::: a >&- 2>err.txt
check "stdout closed: status" 0 $?
$VOW run sh -c 'echo x >&2' ::: a 2>&-
check "stderr closed: status" 0 $?
check "stdout closed: nothing said" "" "$(cat err.txt)"

# --load N: no job starts while N processes run; --memfree SIZE: none
# while less than SIZE is free. Both look again each second. The host's
# own load is not ours to judge: three busy loops of ours hold a job for
# sure, whatever else runs; once they are gone the job must start if the
# host stayed quiet long enough for vow to see it, else the check is
# skipped, not waited for.
check "--load 1000%: runs" "a" "$($VOW run --load 1000% echo ::: a)"
check "--memfree 1M: runs" "a" "$($VOW run --memfree 1M echo ::: a)"
sh -c 'while :; do :; done' &
b1=$!
sh -c 'while :; do :; done' &
b2=$!
sh -c 'while :; do :; done' &
b3=$!
sleep 0.2
$VOW run --load 3 sh -c 'echo {}' ::: held >load.out &
pid=$!
sleep 1.5
check "--load 3 with 3 busy processes of ours: held" "" "$(cat load.out)"
kill $b1 $b2 $b3
# vow looks once a second; the host counts as quiet for it only over a
# stretch of 3 s in which no sample saw 3 other processes running.
n=0
quiet=0
longest=0
while [ ! -s load.out ] && [ $n -lt 150 ]; do
  sleep 0.1
  n=$((n + 1))
  if [ "$(cut -d' ' -f4 /proc/loadavg | cut -d/ -f1)" -le 3 ]; then
    quiet=$((quiet + 1))
    [ $quiet -gt $longest ] && longest=$quiet
  else
    quiet=0
  fi
done
if [ -s load.out ] || [ $longest -ge 30 ]; then
  check "--load 3: starts once our load is gone" "held" "$(cat load.out)"
else
  echo "skip: --load 3 after our load is gone (the host kept 3 or more processes running)"
fi
kill $pid 2>/dev/null
wait $pid 2>/dev/null
timeout 2 $VOW run --memfree 100T echo ::: a >mem.out
check "--memfree 100T: nothing starts" "124|" "$?|$(cat mem.out)"
$VOW run --load x echo ::: a 2>err.txt
check "--load x: refused, named" "255|1" "$?|$(grep -c 'load wants N' err.txt)"
$VOW run --memfree lots echo ::: a 2>err.txt
check "--memfree lots: refused, named" "255|1" "$?|$(grep -c 'memfree wants a size' err.txt)"

report
