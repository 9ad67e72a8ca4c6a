#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on localhost (Debian's slurm-wlm + munge), with one declared
# GPU GRES (no device: jobs run on CPU). Needs root. Usage: up.sh STATE_DIR
# Prints the node state when it is up; stop it with down.sh STATE_DIR. Meant for CI machines:
# it stops SLURM daemons already running on this machine.
set -euo pipefail
state=${1:?usage: up.sh STATE_DIR}
mkdir -p "$state"/ctld "$state"/d

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: Debian's postinst makes the key; make one if it did not
[ -f /etc/munge/munge.key ] || mungekey --create
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

# a cluster left over from an earlier run would keep its old configuration: stop it first
pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
for _ in $(seq 1 40); do  # pkill does not wait: a new daemon would race the old one for its port
  pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null || break
  sleep 0.5
done
sleep 1

cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it honours OMP_NUM_THREADS
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2000 ))
cat > "$state/slurm.conf" <<CONF
ClusterName=cropmapci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName=localhost NodeHostname=localhost CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# without File= slurmd drops a GPU it cannot see and drains the node
echo "NodeName=localhost Name=gpu File=/dev/null Count=1" > "$state/gres.conf"
# the jobstep plugin clears SLURM_* before its inner srun, so the config must be in /etc/slurm
mkdir -p /etc/slurm
ln -sf "$state/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$state/gres.conf" /etc/slurm/gres.conf

slurmctld
slurmd -N localhost
for _ in $(seq 1 60); do
  if sinfo -h -o "%T" 2>/dev/null | grep -qx "idle"; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "SLURM node did not become idle:" >&2
sinfo >&2 || true
tail -20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
