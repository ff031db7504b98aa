#!/bin/sh
# Starts a one-node Slurm cluster (munged, slurmctld, slurmd) as plain
# processes, with its whole state under DIR: no systemd, no /etc/slurm.
#   slurm_up.sh DIR     then: export SLURM_CONF=DIR/slurm.conf
#   slurm_down.sh DIR   stops them by the pids kept in DIR
# Needs root (slurmd runs jobs as their submitter) and Debian's slurm-wlm
# and munge. The node offers 8 CPUs whatever the machine has, so that
# tests can run several one-CPU steps at once on a small machine.
set -eu
dir=$(cd "$1" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
host=$(hostname -s)

# munge: its own socket and key under DIR, so a munged the machine may
# already run is left alone.
if [ ! -f "$dir/munge/munge.key" ]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=128 2>/dev/null
  chmod 600 "$dir/munge/munge.key"
fi
chmod 700 "$dir/munge"
munged --force --key-file="$dir/munge/munge.key" \
  --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"

# Ports from the dynamic range, chosen from our own pid so that two runs
# on one machine do not meet.
base=$((20000 + ($$ % 20000)))
cat >"$dir/slurm.conf" <<CONF
ClusterName=vowtest
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=10
NodeName=$host CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -i
slurmd

# Ready when the node takes work.
i=0
until sinfo -h -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then
    echo "slurm_up: the node is not up after 30 s" >&2
    tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2
    exit 1
  fi
  sleep 0.1
done
