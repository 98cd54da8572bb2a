#!/usr/bin/env bash
# Stops the SLURM of scripts/ci/start_slurm.sh: exactly the daemons it started, by their pid
# files (each node's slurmd, slurmctld, munged), waiting until each has exited.
# Usage: bash scripts/ci/stop_slurm.sh   (same SLURM_CI_DIR as the start)
set -uo pipefail

DIR=${SLURM_CI_DIR:-${TMPDIR:-/tmp}/mmrl-ci-slurm}
status=0
for pidfile in "$DIR"/slurmd-*.pid "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munged.pid"; do
    [[ -f $pidfile ]] || continue
    daemon=${pidfile##*/}
    daemon=${daemon%.pid}
    daemon=${daemon%%-*}
    pid=$(cat "$pidfile")
    # A stale pid file may name a process that is not ours any more.
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$daemon" ]]; then
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$daemon (pid $pid) did not stop within 10 s of SIGTERM; killing it" >&2
            kill -9 "$pid"
            status=1
        fi
    fi
    rm -f -- "$pidfile"
done
echo "SLURM under $DIR stopped"
exit $status
