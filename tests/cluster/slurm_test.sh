#!/bin/sh
# vow on Slurm, for real: a one-node Slurm of our own (slurm_up.sh), srun
# launchers with and without -u, the C tests of the MPI transport under
# srun --mpi=pmix, vow map as MPI ranks under srun with a large stdin,
# and every #SBATCH script of docs/cluster.md submitted exactly as
# written, each compared with a local run.
#   slurm_test.sh BUILD_DIR SOURCE_DIR
set -u
. "$(dirname "$0")/../cli/check.sh"
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
VOW=$BUILD/vow
PLUGIN=$BUILD/tests/libtest_plugin.so
if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null ||
  ! command -v munged >/dev/null; then
  echo "skip: needs root, slurm-wlm and munge; .ci/run installs them"
  exit 77
fi
T=$(mktemp -d)
cleanup() {
  sh "$SRC/tests/cluster/slurm_down.sh" "$T/slurm"
  [ -f "$T/ssh/sshd.pid" ] && kill "$(cat "$T/ssh/sshd.pid")" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
mkdir "$T/slurm"
if ! sh "$SRC/tests/cluster/slurm_up.sh" "$T/slurm"; then
  echo "FAIL: the one-node Slurm did not start"
  exit 1
fi
export SLURM_CONF="$T/slurm/slurm.conf"
# Open MPI refuses root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$T"

# srun launchers: vow adds the -u that a binary channel needs.
seq 0 1999 | awk '{print "[" $1 ", 1]"}' >in.jsonl
seq 1 2000 >want
for launcher in "2/srun -N1 -n1 --exact --quiet" "2/srun -u -N1 -n1 --exact --quiet"; do
  timeout 120 "$VOW" map "$PLUGIN" add --launcher "$launcher" <in.jsonl >out 2>err
  check "$launcher: status" 0 $?
  check "$launcher: every result once, in order" "$(cat want)" "$(cat out)"
done
steps=$(grep -c 'launch task' "$T/slurm/slurmd.log")
check "the workers were Slurm steps (4 or more: $steps)" 1 \
  "$([ "$steps" -ge 4 ] && echo 1)"

# The MPI transport's own tests, with srun's PMIx as the launcher: rank 0
# runs them, ranks 1 and 2 are agents (test_mpi checks every result came
# from an agent).
timeout 300 srun --mpi=pmix -n 3 "$BUILD/tests/test_mpi" >mpi.out 2>&1
check "test_mpi under srun --mpi=pmix -n 3" 0 $?
check "... all of them ran" 1 "$(grep -c 'PASSED  \] 11 test' mpi.out)"

# vow map as three ranks, 1.6 MB on stdin, which srun gives every task.
seq 0 199999 | awk '{print "[" $1 ", 1]"}' >big.jsonl
timeout 120 srun --mpi=pmix -n 3 "$VOW" map "$PLUGIN" add <big.jsonl >big.out 2>err
check "srun --mpi=pmix -n 3 vow map: status" 0 $?
check "... every line once, in order" "$(seq 1 200000 | md5sum)" \
  "$(md5sum <big.out)"

# docs/cluster.md's batch scripts, as written, from a directory laid out
# as they expect (build/, jobs.jsonl, vow on PATH).
mkdir docs && cd docs
ln -s "$BUILD" build
for i in $(seq 1 40); do
  echo "{\"f\": \"sin\", \"a\": 0, \"b\": $i, \"n\": 20000}"
done >jobs.jsonl
"$VOW" map build/examples/integrate.so integrate <jobs.jsonl >want.jsonl
PATH=$BUILD:$PATH
export PATH
awk '
  /^```sh$/ { inblock = 1; text = ""; next }
  /^```$/ && inblock {
    inblock = 0
    if (text ~ /^#!\/bin\/sh\n/ && text ~ /#SBATCH/) {
      n++; f = "script" n ".sh"; printf "%s", text > f; close(f)
    }
    next
  }
  inblock { text = text $0 "\n"; if ($0 ~ /^vow merge /) print $0 > "merges.sh" }
' "$SRC/docs/cluster.md"
scripts=$(ls script*.sh 2>/dev/null | wc -l | tr -d ' ')
check "docs/cluster.md has its batch scripts" 1 "$([ "$scripts" -ge 3 ] && echo 1)"
check "docs/cluster.md has its merge commands" 2 "$(wc -l < merges.sh | tr -d ' ')"
for s in script*.sh; do
  out=$(sed -n 's/.*> *\([a-z_.]*jsonl\) *$/\1/p' "$s" | tail -1)
  if grep -q -- '--array' "$s"; then
    out=results.jsonl # made by the page's vow merge lines, run below
  fi
  rm -f "$out" results.*.jsonl joblog*
  timeout 300 sbatch --wait -o "$s.%a.log" "$s" >/dev/null 2>&1
  check "$(sed -n 3p "$s"): sbatch --wait" 0 $?
  if grep -q -- '--array' "$s"; then
    check "... each array task ran its shard" 3 "$(ls results.*.jsonl | wc -l | tr -d ' ')"
    sh merges.sh
    check "... vow merge as the page gives it" 0 $?
    check "... the merged joblog: a line per input line" 41 \
      "$(wc -l < joblog | tr -d ' ')"
  fi
  check "... its results are a local run's" "$(cat want.jsonl)" "$(cat "$out" 2>/dev/null)"
  cat "$s".*.log 2>/dev/null | sed 's/^/  | /'
done


# The page's mpirun lines of vow map, as written (three ranks on this
# machine's cores: Open MPI is told it may oversubscribe them). The
# resuming one runs twice: once as the first run (no joblog yet), once
# more finding every line done, adding nothing.
grep -E '^mpirun -n 3 vow map build/' "$SRC/docs/cluster.md" > mpiruns.sh
check "docs/cluster.md has its two mpirun lines" 2 "$(wc -l < mpiruns.sh | tr -d ' ')"
export OMPI_MCA_rmaps_base_oversubscribe=1
rm -f out.jsonl joblog
sed -n 1p mpiruns.sh > mpirun1.sh
timeout 300 sh mpirun1.sh 2> mpirun.err
check "$(cat mpirun1.sh): status" 0 $?
check "... its results are a local run's" "$(cat want.jsonl)" "$(cat out.jsonl)"
rm -f out.jsonl joblog
sed -n 2p mpiruns.sh > mpirun2.sh
timeout 300 sh mpirun2.sh 2>> mpirun.err && timeout 300 sh mpirun2.sh 2>> mpirun.err
check "$(cat mpirun2.sh), twice: status" 0 $?
check "... every line once" "$(cat want.jsonl)" "$(cat out.jsonl)"
unset OMPI_MCA_rmaps_base_oversubscribe

# The page's per-node ssh loop, as written, inside an allocation (salloc):
# its node is this machine, reached through an sshd of ours on loopback
# that a mount namespace's root home names in its .ssh/config (the
# machine's own ~/.ssh is neither read nor touched).
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v unshare >/dev/null; then
  mkdir -p "$T/ssh" "$T/roothome/.ssh"
  . "$SRC/scripts/loopback-sshd.sh"
  if start_loopback_sshd "$T/ssh"; then
    node=$(scontrol show hostnames "$(sinfo -h -o %N)")
    cat > "$T/roothome/.ssh/config" <<CONF
Host $node
  HostName 127.0.0.1
  Port $SSH_PORT
  User root
  IdentityFile $T/ssh/userkey
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
CONF
    chmod 600 "$T/roothome/.ssh/config"
    awk '
      /^```sh$/ { inblock = 1; text = ""; next }
      /^```$/ && inblock { inblock = 0; if (text ~ /scontrol show hostnames/) printf "%s", text; next }
      inblock { text = text $0 "\n" }
    ' "$SRC/docs/cluster.md" > pernode.sh
    check "docs/cluster.md has its per-node ssh loop" 1 "$(grep -c 'scontrol show hostnames' pernode.sh)"
    rm -f results.jsonl
    home=$(getent passwd root | cut -d: -f6)
    unshare -m sh -c 'mount --bind "$1" "$2" && timeout 300 salloc -n 2 sh pernode.sh' \
      - "$T/roothome" "$home" > pernode.out 2>&1
    check "the per-node ssh loop under salloc: status" 0 $?
    check "... its results are a local run's" "$(cat want.jsonl)" "$(cat results.jsonl 2>/dev/null)"
    logins=$(grep -c 'Accepted publickey' "$T/ssh/sshd.log")
    check "... its 32 workers came in over ssh ($logins logins)" yes \
      "$([ "$logins" -ge 32 ] && echo yes)"
    sed 's/^/  | /' pernode.out | head -n 5
  fi
fi
report
