#!/bin/sh
# Tiny tasks over each transport on this machine, in one run: pipes to
# local workers, ssh to an sshd on loopback (root and openssh-server
# needed), and MPI ranks (mpirun -n 3: rank 0 and two agents), next to
# mpi4py.futures' MPIPoolExecutor on the same work (Debian's
# python3-mpi4py, /usr/bin/python3), task by task.
#   bench/transport.sh [TASKS [TRIPS]]   (default 200,000 and 2,000)
# The peer's throughput runs TASKS/10 tasks: a rate is compared.
set -eu
cd "$(dirname "$0")/.."
tasks=${1:-200000}
trips=${2:-2000}
VOW_DEPS_FULL=1 sh scripts/install-deps.sh
if ! /usr/bin/python3 -c 'import mpi4py' 2>/dev/null; then
  echo "installing python3-mpi4py for the side-by-side run" >&2
  apt-get update -qq && apt-get install -y -qq python3-mpi4py >/dev/null
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_BENCH=ON \
  -DVOW_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target bench-transport vow-mpi >/dev/null
tmp=$(mktemp -d)
cleanup() {
  [ -f "$tmp/sshd.pid" ] && kill "$(cat "$tmp/sshd.pid")" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
bin=./build-bench/bench/bench-transport
mpirun="mpirun --allow-run-as-root --oversubscribe -n 3"

$bin "$tasks" "$trips" > "$tmp/pipes"
: > "$tmp/ssh"
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
  . scripts/loopback-sshd.sh
  if start_loopback_sshd "$tmp"; then
    $bin "$tasks" "$trips" --launcher "2/$SSH" > "$tmp/ssh"
  fi
fi
$mpirun $bin "$tasks" "$trips" > "$tmp/mpi"
$mpirun /usr/bin/python3 -m mpi4py.futures bench/mpi_peer.py \
  $((tasks / 10)) "$trips" > "$tmp/peer"

echo "$(nproc) cores; vow: $tasks tasks, mpi4py.futures: $((tasks / 10)); $trips round trips"
awk -F'\t' '
  FILENAME ~ /pipes$/ { pipes[$1] = $2; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1; unit[$1] = $3 } }
  FILENAME ~ /ssh$/   { ssh[$1] = $2 }
  FILENAME ~ /mpi$/   { mpi[$1] = $2 }
  FILENAME ~ /peer$/  { peer[$1] = $2 }
  function cell(x) { return x == "" ? "-" : sprintf("%.1f", x) }
  END {
    printf "%-22s %-8s | %12s %12s %12s | %14s | %10s\n", "measure", "unit", \
      "vow pipes", "vow ssh", "vow MPI", "mpi4py.futures", "MPI / peer"
    for (i = 1; i <= k; i++) {
      m = order[i]
      r = (peer[m] > 0 && m ~ /per_s/) ? sprintf("%.1fx", mpi[m] / peer[m]) : \
          (mpi[m] > 0 && m ~ /_us$/) ? sprintf("%.2fx less", peer[m] / mpi[m]) : "-"
      printf "%-22s %-8s | %12s %12s %12s | %14s | %10s\n", m, unit[m], \
        cell(pipes[m]), cell(ssh[m]), cell(mpi[m]), cell(peer[m]), r
    }
  }' "$tmp/pipes" "$tmp/ssh" "$tmp/mpi" "$tmp/peer"
