#!/usr/bin/env bash
# A one-node SLURM 22.05 cluster on localhost (slurmctld and slurmd on this machine), for the
# tests against a real cluster. Idempotent: when the node already answers, it does nothing.
# There is no systemd here, so the daemons are started directly, as root.
set -euo pipefail

PARTITION=main
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

node_state() { sinfo -h -N -p "$PARTITION" -o '%T' 2>/dev/null | head -1; }

if command -v sinfo >/dev/null && scontrol ping 2>/dev/null | grep -q UP \
  && [[ "$(node_state)" =~ ^(idle|mixed|allocated)$ ]]; then
  exit 0  # already up: the second call costs one sinfo
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# This machine's cores and memory. Jobs share cores (OverSubscribe=FORCE): the test arrays run
# more single-thread workers than this machine has cores, and no cgroups are needed for that.
cpus=$(nproc)
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
cat >"$CONF.new" <<CONF
# Written by scalelab's .ci/services.d/slurm.sh for this machine: one node, one partition.
ClusterName=scalelab
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
# sacct needs slurmdbd (and MariaDB) on 22.05; without it the tests read a job's state and its
# requeue count from slurmctld (scontrol show job), which keeps finished jobs for MinJobAge.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=900
ReturnToService=2
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
changed=0
if ! cmp -s "$CONF.new" "$CONF"; then mv "$CONF.new" "$CONF"; changed=1; else rm "$CONF.new"; fi

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! running /run/munge/munged.pid; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge >/dev/null || { echo "munged does not answer" >&2; exit 1; }

if ((changed)); then  # a new slurm.conf: daemons started with the old one must restart
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if running "$pidfile"; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 50); do running "$pidfile" || break; sleep 0.2; done
    fi
  done
fi
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 60); do
  state=$(node_state || true)
  case "$state" in
    idle|mixed|allocated) sinfo; exit 0 ;;
    down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "SLURM did not come up: node state '${state:-unknown}'; see /var/log/slurm/*.log" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
