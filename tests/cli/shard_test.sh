#!/bin/sh
# Job arrays: one input split over N runs with --shard K/N (or a Slurm
# array task's place), merged back with vow merge. A line gets the same
# number, seed and result in any shard as in the whole run; shards'
# outputs and joblogs merge to the whole run's; one shard resumes alone;
# a shard that stopped early is refused by merge, naming the line.
#   shard_test.sh VOW_BINARY PLUGIN.so
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
in_tmpdir

# 23 lines over 4 shards (6, 6, 6, 5): each line's seed, numbered.
seq 1 23 | sed 's/.*/[&]/' > in.jsonl
$VOW map "$PLUGIN" seed --seed 7 --line-numbers < in.jsonl > whole.jsonl
for k in 1 2 3 4; do
  $VOW map "$PLUGIN" seed --seed 7 --line-numbers --shard $k/4 \
    --joblog log.$k < in.jsonl > out.$k
  check "shard $k/4: status" 0 $?
done
check "shard 2/4 holds lines 2, 6, 10, 14, 18, 22" "2 6 10 14 18 22" \
  "$(sed 's/{"line":\([0-9]*\),.*/\1/' out.2 | tr '\n' ' ' | sed 's/ $//')"
check "shard 4/4 holds 5 lines" 5 "$(wc -l < out.4 | tr -d ' ')"
check "each line's seed is the whole run's" "$(sort whole.jsonl)" \
  "$(cat out.1 out.2 out.3 out.4 | sort)"
check "merged: the whole run's output, byte for byte" \
  "$(cat whole.jsonl)" "$($VOW merge out.1 out.2 out.3 out.4)"
check "merged joblogs: one header, Seq 1..23" "Seq $(seq 1 23 | tr '\n' ' ')" \
  "$($VOW merge --joblog log.1 log.2 log.3 log.4 | cut -f1 | tr '\n' ' ')"

# Without --line-numbers the outputs carry no numbers: merge deals them
# back by place.
seq 0 99 | awk '{print "[" $1 ", 1]"}' > add.jsonl
for k in 1 2 3; do
  $VOW map "$PLUGIN" add --shard $k/3 < add.jsonl > add.$k
done
check "plain outputs merge in input order" "$(seq 1 100)" \
  "$($VOW merge add.1 add.2 add.3)"

# One shard resumed alone: its joblog holds its lines by their number in
# the whole input; the rest of that shard runs, and nothing else.
head -3 log.2 > resumed.log
head -2 out.2 > resumed.out
$VOW map "$PLUGIN" seed --seed 7 --line-numbers --shard 2/4 \
  --joblog resumed.log --resume < in.jsonl >> resumed.out
check "a shard resumed: its whole output" "$(cat out.2)" "$(cat resumed.out)"
check "... its joblog: its lines only" "Seq 2 6 10 14 18 22" \
  "$(cut -f1 resumed.log | tr '\n' ' ' | sed 's/ $//')"

# A shard cut short is refused by merge, which names the line it lacks.
head -4 out.3 > short.3
$VOW merge out.1 out.2 short.3 out.4 > merged 2> err
check "a short shard: refused" 255 $?
check "... naming where it ends" 1 \
  "$(grep -c 'short.3 ends before input line 19, but out.1 goes on' err)"

# Slurm's array variables (--array=0-6:2 here): task 4 is shard 3 of 4.
SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_STEP=2 \
  SLURM_ARRAY_TASK_COUNT=4 $VOW map "$PLUGIN" seed --seed 7 --line-numbers \
  --shard slurm < in.jsonl > slurm.3
check "--shard slurm: task 4 of 0-6:2 is shard 3/4" "$(cat out.3)" "$(cat slurm.3)"
# sbatch --array=2 (task 2 of 1-3 again) says task 2 of 1: refused.
SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_COUNT=1 \
  $VOW map "$PLUGIN" seed --shard slurm < in.jsonl > /dev/null 2> err
check "--shard slurm, an array from task 2: refused" 255 $?
check "... saying to give K/N" 1 "$(grep -c 'give --shard K/N' err)"
$VOW map "$PLUGIN" seed --shard slurm < in.jsonl > /dev/null 2> err
check "--shard slurm outside an array: refused" 255 $?
check "... saying so" 1 "$(grep -c 'not a Slurm array task' err)"
for bad in 0/4 5/4 4 a/b 1/0; do
  $VOW map "$PLUGIN" seed --shard "$bad" < in.jsonl > /dev/null 2> err
  check "--shard $bad: refused" 255 $?
done

# vow run: jobs J of the whole input, {#} and the joblog's Seq are J.
check "vow run --shard 2/3: jobs 2 and 5" "2 b${nl}5 e" \
  "$($VOW run -k --shard 2/3 echo {#} {} ::: a b c d e f)"
for k in 1 2 3; do
  $VOW run --shard $k/3 --joblog run.$k true ::: 1 2 3 4 5 6 7
done
check "vow run shards' joblogs merge: jobs 1..7 once" "$(seq 1 7)" \
  "$($VOW merge --joblog run.1 run.2 run.3 | tail -n +2 | cut -f1)"
report
