#!/usr/bin/env bash
# One job of a pool or SLURM sweep, as mmrl/launch.py runs it: run_job of scripts/common.sh,
# with the same rules (a finished folder is skipped, an unfinished one rerun, resuming from its
# last saved epoch), in the job's own output folder.
# Usage (the scripts write these lines into a sweep's plan; not meant to be typed):
#   bash scripts/job.sh TRAINER DATA_ROOT TAG DIR MODE SEED DATASET CFG MODEL_DIR OPT...
set -euo pipefail
TRAINER=$1
JOB_DATA_ROOT=$2
shift 2
# The job runs here, not into a plan; FORCE and OPTS were applied when the sweep planned it.
unset SWEEP_PLAN SWEEP_STATUS SWEEP_DIR
FORCE=0
OPTS=""
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=$JOB_DATA_ROOT
# On SIGTERM (the launchers stop a job's whole process group) bash waits for train.py to end
# cleanly before it exits itself, so nothing of the job outlives it.
trap 'exit 143' TERM
run_job "$@"
