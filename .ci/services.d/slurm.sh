#!/usr/bin/env bash
# A one-node SLURM 22.05 cluster on localhost (slurmctld and slurmd on this machine), with
# accounting (slurmdbd on MariaDB) so that sacct sees every job, for the tests against a real
# cluster. Idempotent: when the node and the accounting database already answer, it does
# nothing. There is no systemd here, so the daemons are started directly, as root.
set -euo pipefail

CLUSTER=scalelab
PARTITION=main
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
NODE=$(hostname -s)

node_state() { sinfo -h -N -p "$PARTITION" -o '%T' 2>/dev/null | head -1; }
# sacctmgr asks slurmdbd, which asks MariaDB: an answer naming the cluster means all three work.
registered() { sacctmgr -n -P show cluster "$CLUSTER" format=cluster 2>/dev/null | grep -qx "$CLUSTER"; }

if command -v sinfo >/dev/null && scontrol ping 2>/dev/null | grep -q UP \
  && [[ "$(node_state)" =~ ^(idle|mixed|allocated)$ ]] \
  && scontrol show config 2>/dev/null | grep -q '^AccountingStorageType *= accounting_storage/slurmdbd' \
  && registered; then
  exit 0  # already up: the second call costs one sinfo, one scontrol and one sacctmgr
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
  || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
fi

# This machine's cores and memory. Jobs share cores (OverSubscribe=FORCE): the test arrays run
# more single-thread workers than this machine has cores, and no cgroups are needed for that.
cpus=$(nproc)
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
cat >"$CONF.new" <<CONF
# Written by scalelab's .ci/services.d/slurm.sh for this machine: one node, one partition.
ClusterName=$CLUSTER
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
# sacct reads slurmdbd (below), which keeps every job and, with --duplicates, each requeue.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
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

fail() {  # one line naming what failed, then the logs that say why
  echo "$1" >&2
  shift
  tail -n 20 "$@" >&2 || true
  exit 1
}

# MariaDB for slurmdbd, which reaches it as 'slurm'@'localhost' (the local socket only).
if ! mysqladmin ping --silent &>/dev/null; then
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    mysql_install_db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  mkdir -p /run/mysqld /var/log/mysql && chown mysql:mysql /run/mysqld /var/log/mysql
  setsid mysqld_safe --user=mysql </dev/null >/dev/null 2>&1 &
  for _ in $(seq 60); do mysqladmin ping --silent &>/dev/null && break; sleep 0.5; done
  mysqladmin ping --silent &>/dev/null || fail "MariaDB did not start" /var/log/mysql/error.log
fi

# The slurm database user's password lives only in slurmdbd.conf (mode 600): reuse it, or
# make one on the first call.
pass=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
[[ -n "$pass" ]] || pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
mysql <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# slurmdbd runs as slurm.conf's SlurmUser (root), which must own its config.
(
  umask 077
  cat >"$DBD_CONF.new" <<CONF
# Written by scalelab's .ci/services.d/slurm.sh: slurmdbd for the one-node cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$pass
CONF
)
chown root:root "$DBD_CONF.new"
dbd_changed=0
if ! cmp -s "$DBD_CONF.new" "$DBD_CONF"; then
  mv "$DBD_CONF.new" "$DBD_CONF"
  dbd_changed=1
else
  rm "$DBD_CONF.new"
fi
if ((dbd_changed)) && running /run/slurmdbd.pid; then
  kill "$(cat /run/slurmdbd.pid)"
  for _ in $(seq 50); do running /run/slurmdbd.pid || break; sleep 0.2; done
fi
running /run/slurmdbd.pid || /usr/sbin/slurmdbd
for _ in $(seq 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -n show cluster >/dev/null 2>&1 \
  || fail "slurmdbd does not answer" /var/log/slurm/slurmdbd.log /var/log/mysql/error.log
# slurmctld must find its cluster in the database when it starts.
registered || sacctmgr -i add cluster "$CLUSTER" >/dev/null \
  || fail "sacctmgr could not register cluster $CLUSTER" /var/log/slurm/slurmdbd.log

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
