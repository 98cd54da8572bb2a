#!/usr/bin/env bash
# A SLURM on this machine, for the tests marked `slurm` (run as root, e.g. in CI).
# Installs slurm-wlm and munge with apt-get when they are missing, writes a slurm.conf for
# $(hostname) with $(nproc) CPUs, starts munged, slurmctld and slurmd with their state, spool,
# logs and pid files under one folder, and waits until sinfo shows the nodes idle.
# A second slurmd serves a second node, "localhost" (this machine again, under the name every
# machine resolves): the partition "two" holds both, so that a job of two nodes runs here. The
# default partition "debug" holds $(hostname) alone.
# Usage: bash scripts/ci/start_slurm.sh        (stop it with scripts/ci/stop_slurm.sh)
#   SLURM_CI_DIR  the folder of this SLURM (default: ${TMPDIR:-/tmp}/mmrl-ci-slurm)
# Afterwards, point the SLURM commands at it: export SLURM_CONF=$SLURM_CI_DIR/slurm.conf
# (the script prints that line last).
set -euo pipefail

DIR=${SLURM_CI_DIR:-${TMPDIR:-/tmp}/mmrl-ci-slurm}
die() {
    echo "ERROR: $*" >&2
    exit 1
}

[[ $(id -u) == 0 ]] || die "start_slurm.sh runs the SLURM daemons as root: run it as root (sudo)"
if [[ -f $DIR/slurmctld.pid ]] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    die "a SLURM started by this script is already running under $DIR: stop it first with scripts/ci/stop_slurm.sh"
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "Installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

HOST=$(hostname)
SECOND=localhost
[[ $HOST != "$SECOND" ]] || die "this machine's hostname is '$HOST', the name of the second node: give it another hostname"
CPUS=$(nproc)
# 90% of the memory: slurmd drains a node that has less than it is configured with.
MEM_MB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)

rm -rf -- "$DIR"
mkdir -p "$DIR"/{state,munge} "$DIR/spool/$HOST" "$DIR/spool/$SECOND"
chmod 700 "$DIR/munge"
# munged insists that its key is private and owned by the user it runs as.
if [[ ! -f /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
else
    cp /etc/munge/munge.key "$DIR/munge/munge.key"
fi
chmod 400 "$DIR/munge/munge.key"

cat > "$DIR/slurm.conf" <<CONF
# One-node SLURM for tests, written by scripts/ci/start_slurm.sh.
ClusterName=mmrl-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits until its revoked credential expires (default 120 s): short here, so
# that the requeue tests do not wait minutes.
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((MEM_MB / CPUS))
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# Two GPUs that the node does not have, on stand-in device files (SLURM drops a GPU without one):
# jobs that ask for GPUs per node (the sweeps' --gpus-per-job) are scheduled, and run their
# processes on the CPU with Gloo.
GresTypes=gpu
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
# Each node's slurmd on a port of its own.
NodeName=$HOST Port=6818 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
NodeName=$SECOND NodeAddr=127.0.0.1 Port=6819 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=two Nodes=$HOST,$SECOND MaxTime=INFINITE State=UP
CONF
printf 'Name=gpu File=%s\n' /dev/null /dev/zero > "$DIR/gres.conf"
export SLURM_CONF=$DIR/slurm.conf

munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munged.seed" ||
    die "munged did not start: see $DIR/munged.log"
slurmctld -f "$SLURM_CONF" || die "slurmctld did not start: see $DIR/slurmctld.log"
for node in "$HOST" "$SECOND"; do
    slurmd -f "$SLURM_CONF" -N "$node" || die "slurmd of node $node did not start: see $DIR/slurmd-$node.log"
done

state=""
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST,$SECOND" -o %T 2>/dev/null | sort -u | xargs || true)
    [[ $state == idle ]] && break
    sleep 1
done
[[ $state == idle ]] ||
    die "the nodes $HOST and $SECOND are '${state:-not known}' after 60 s, not idle: see $DIR/slurmctld.log and $DIR/slurmd-*.log"
echo "SLURM is up: nodes $HOST and $SECOND idle with $CPUS CPUs, $MEM_MB MB each (state, logs and pid files in $DIR)"
echo "export SLURM_CONF=$SLURM_CONF"
