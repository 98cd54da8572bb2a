#!/usr/bin/env bash
# Few-shot sweep: for every dataset, train and test with 1, 2, 4, 8 and 16 shots per class
# (scripts/<trainer>/few_shot.sh), then print the datasets x shots table.
# Usage: bash scripts/few_shot.sh TRAINER [SEED]   (a trainer whose script folder has a few_shot.sh:
#   MMRL, MMRLpp; the zero-shot baseline has no few-shot runs)
#   DATASETS="..." restricts the list (default: the 11 benchmark datasets; DATASETS=demo runs
#   the built-in demo); SHOTS="..." restricts the shots; datasets whose folder is missing under
#   $DATA are skipped and listed.
# Results: $OUTPUT/few_shot/<dataset>/shots_<K>/<trainer>/<cfg>/seed<S>/
# Launchers: LAUNCHER=local (default, one job after another), pool (GPUS=0,1,.. or SLOTS=N) or
#   slurm (JOB_* settings, WAIT=1), or the same as flags, e.g. --launcher pool --gpus 0,1,2,3.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, LAUNCHER, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
sweep_args "$@"
set -- "${ARGS[@]}"
[[ $# -ge 1 && $# -le 2 ]] || die "usage: bash $0 TRAINER [SEED] [--launcher local|pool|slurm] [launcher options]   (TRAINER: one of $(known_trainers) with a few_shot.sh)"
require_repo_root
TRAINER=$1
SEED_ARG=(${2:+"$2"})
DIR=$(trainer_scripts "$TRAINER")
[[ -f $DIR/few_shot.sh ]] || die "few-shot does not apply to $TRAINER: $DIR has no few_shot.sh"
sweep_begin
load_protocol_datasets
# The lineage runs dtd first, then the base-to-novel order.
# shellcheck disable=SC2086  # the dataset list is split on purpose
sort_by_data ${DATASETS:-dtd ${B2N_DATASETS/dtd /}}
for dataset in "${HAVE_DATA[@]}"; do
    sweep_step "$DIR/few_shot.sh" "$dataset" "${SEED_ARG[@]}" || true
done
sweep_launch
sweep_table --table fewshot
sweep_report
