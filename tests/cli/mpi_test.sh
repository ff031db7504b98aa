#!/bin/sh
# `vow map` under mpirun: ranks 1 and 2 become node agents and run the
# workers; the output is the same as without MPI. A job that MPI aborts
# (an agent rank killed) leaves a joblog of every result written out, and
# --resume runs only the rest: no result is lost.
#   mpi_test.sh MPIEXEC VOW_BINARY PLUGIN
set -u
. "$(dirname "$0")/check.sh"
MPIRUN="$1 --allow-run-as-root --oversubscribe -n 3"
VOW=$2
PLUGIN=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
nl='
'

# Results: the same lines as a local run, in input order.
seq 1 1000 | awk '{print "[" $1 "," $1 "]"}' > "$T/pairs"
want=$(seq 1 1000 | awk '{print 2 * $1}')
check "map over the ranks" "$want" "$($MPIRUN $VOW map "$PLUGIN" add < "$T/pairs")"
check "map alone" "$want" "$($VOW map "$PLUGIN" add < "$T/pairs")"

# The workers' parents are the agents, ranks 1 and 2; both are used.
for i in $(seq 1 24); do echo '[30]'; done > "$T/ranks_in"
check "workers run on ranks 1 and 2" "1${nl}2" \
  "$($MPIRUN $VOW map "$PLUGIN" parent_rank < "$T/ranks_in" | sort -u)"

# Task errors show as under pipes: an error line for each, and status 1.
printf '1\n7\n' | $MPIRUN $VOW map "$PLUGIN" fail > "$T/err" 2>/dev/null
check "task error: the job fails" 1 "$([ $? -ne 0 ] && echo 1)"
check "task error: each line says why" 2 \
  "$(grep -c '"error":"task error: refused [17] \[task [0-9]*, fail, pid' "$T/err")"

# The rank of an agent, found by the environment mpirun gave it.
agent_pid() {
  for p in $(mine "vow map $PLUGIN sleep"); do
    if { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null |
      grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"
      return
    fi
  done
}

# Abort: kill agent rank 1 while 40 tasks of 100 ms run; mpirun ends the
# whole job. Every result that arrived is in the joblog.
for i in $(seq 1 40); do echo '[100]'; done > "$T/slow"
$MPIRUN $VOW map "$PLUGIN" sleep --line-numbers --joblog "$T/jl" < "$T/slow" > "$T/first" 2>"$T/first.err" &
job=$!
n=0
results() { cat "$T/jl" 2>/dev/null | grep -c 'sleep line'; }
# (Up to a minute: mpirun's start on a busy machine is slow.)
while [ "$(results)" -lt 6 ] && [ $n -lt 1200 ]; do
  sleep 0.05
  n=$((n + 1))
done
kill -9 "$(agent_pid 1)"
wait $job
check "the aborted job fails" 1 "$([ $? -ne 0 ] && echo 1)"
done_before=$(results)
check "results arrived before the abort" 1 \
  "$([ "$done_before" -ge 6 ] && [ "$done_before" -lt 40 ] && echo 1)"
logged=$(awk 'NR > 1 {print $1}' "$T/jl" | sort -n)
written=$(grep -o '"line":[0-9]*' "$T/first" | cut -d: -f2 | sort -n)
check "the joblog names only lines whose result was written" "" \
  "$(echo "$logged" | grep -vxF "$written" | grep .)"
$MPIRUN $VOW map "$PLUGIN" sleep --line-numbers --joblog "$T/jl" --resume \
  < "$T/slow" > "$T/second"
check "--resume runs only the rest" $((40 - done_before)) \
  "$(wc -l < "$T/second" | tr -d ' ')"
check "no result lost: each line in one run or the other" "$(seq 1 40)" \
  "$(cat "$T/first" "$T/second" | grep -o '"line":[0-9]*' | cut -d: -f2 | sort -n | uniq)"
check "every line once in the joblog" "$(seq 1 40)" \
  "$(awk 'NR > 1 {print $1}' "$T/jl" | sort -n)"
report
