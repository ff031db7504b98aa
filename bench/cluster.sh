#!/bin/sh
# vow map through each way of reaching workers on this machine, in one
# run: local pipes, ssh (an sshd on loopback), an srun launcher (a
# one-node Slurm of the bench's own), mpirun -n 3 and srun --mpi=pmix -n 3
# (rank 0 and two agents). Two inputs: TINY lines of the test plugin's
# add (the cost is the transport's) and 200 lines of examples/integrate
# (the cost is the work's). Needs root, openssh-server, slurm-wlm and munge
# (scripts/install-deps.sh with VOW_DEPS_FULL=1 installs them).
#   bench/cluster.sh [TINY]   (default 200,000)
set -eu
cd "$(dirname "$0")/.."
tiny=${1:-200000}
VOW_DEPS_FULL=1 sh scripts/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_BENCH=ON \
  -DVOW_BUILD_TESTS=ON >/dev/null
cmake --build build-bench -j "$(nproc)" --target vow-cli vow-worker \
  vow-mpi test_plugin integrate >/dev/null
bin=$(pwd)/build-bench
vow=$bin/vow
plugin=$bin/tests/libtest_plugin.so
integrate=$bin/examples/integrate.so
tmp=$(mktemp -d)
cleanup() {
  [ -f "$tmp/sshd.pid" ] && kill "$(cat "$tmp/sshd.pid")" 2>/dev/null
  sh tests/cluster/slurm_down.sh "$tmp/slurm"
  rm -rf "$tmp"
}
trap cleanup EXIT
. scripts/loopback-sshd.sh
start_loopback_sshd "$tmp"
mkdir "$tmp/slurm"
sh tests/cluster/slurm_up.sh "$tmp/slurm"
export SLURM_CONF="$tmp/slurm/slurm.conf"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

seq 0 $((tiny - 1)) | awk '{print "[" $1 ", 1]"}' > "$tmp/tiny.jsonl"
for i in $(seq 1 200); do
  echo "{\"f\": \"sin\", \"a\": 0, \"b\": $i, \"n\": 2000000}"
done > "$tmp/integrate.jsonl"
"$vow" map "$plugin" add -j 2 < "$tmp/tiny.jsonl" > "$tmp/tiny.want"
"$vow" map "$integrate" integrate -j 2 < "$tmp/integrate.jsonl" > "$tmp/integrate.want"

# seconds LABEL INPUT WANT CMD...: the wall time of CMD < INPUT, checked
# against WANT (a transport that lost or changed a line is no result).
seconds() {
  label=$1 input=$2 want=$3
  shift 3
  t0=$(date +%s.%N)
  "$@" < "$input" > "$tmp/got"
  t1=$(date +%s.%N)
  if ! cmp -s "$tmp/got" "$want"; then
    echo "$label: the output differs from the local run's" >&2
    exit 1
  fi
  echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}

printf '%s cores; %s tiny lines (add), 200 integrate lines (n = 2e6); 2 workers each\n' \
  "$(nproc)" "$tiny"
printf '%-34s %10s %10s %12s\n' "transport" "tiny (s)" "integrate" "tiny / ssh"
row() {
  label=$1
  shift
  a=$(seconds "$label" "$tmp/tiny.jsonl" "$tmp/tiny.want" "$@" "$plugin" add)
  b=$(seconds "$label" "$tmp/integrate.jsonl" "$tmp/integrate.want" "$@" "$integrate" integrate)
  [ -z "${ssh_tiny:-}" ] && [ "$label" = "ssh (loopback)" ] && ssh_tiny=$a
  printf '%-34s %10s %10s %12s\n' "$label" "$a" "$b" \
    "$(echo "$a ${ssh_tiny:-0}" | awk '$2 > 0 {printf "%.2fx", $1 / $2}')"
}
row "ssh (loopback)" "$vow" map --launcher "2/$SSH"
row "local pipes" "$vow" map -j 2
row "srun launcher (-u added)" "$vow" map --launcher "2/srun -N1 -n1 --exact --quiet"
row "mpirun -n 3" mpirun -n 3 --oversubscribe "$vow" map
row "srun --mpi=pmix -n 3" srun --mpi=pmix -n 3 "$vow" map
