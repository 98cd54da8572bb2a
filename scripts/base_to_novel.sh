#!/usr/bin/env bash
# Base-to-novel sweep: for every dataset, train on the base classes then test on the new
# classes (scripts/<trainer>/base2new_{train,test}.sh), then print the Base/New/HM table.
# Usage: bash scripts/base_to_novel.sh TRAINER [SEED]   (TRAINER: MMRL, MMRLpp, ZeroshotCLIP: any with a scripts/<folder>/trainer.sh)
#   DATASETS="..." restricts the list (default: the 11 benchmark datasets; DATASETS=demo runs
#   the built-in demo); datasets whose folder is missing under $DATA are skipped and listed.
# Results: $OUTPUT/base2new/{train_base,test_new}/<dataset>/shots_16/<trainer>/<cfg>/seed<S>/
# Launchers: LAUNCHER=local (default, one job after another), pool (GPUS=0,1,.. or SLOTS=N) or
#   slurm (JOB_* settings, WAIT=1), or the same as flags, e.g. --launcher pool --gpus 0,1,2,3.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, LAUNCHER): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
sweep_args "$@"
set -- "${ARGS[@]}"
[[ $# -ge 1 && $# -le 2 ]] || die "usage: bash $0 $(known_trainers) [SEED] [--launcher local|pool|slurm] [launcher options]"
require_repo_root
TRAINER=$1
SEED_ARG=(${2:+"$2"})
DIR=$(trainer_scripts "$TRAINER")
sweep_begin
load_protocol_datasets
# shellcheck disable=SC2086  # the dataset list is split on purpose
sort_by_data ${DATASETS:-$B2N_DATASETS}
for dataset in "${HAVE_DATA[@]}"; do
    if sweep_step "$DIR/base2new_train.sh" "$dataset" "${SEED_ARG[@]}"; then
        sweep_step "$DIR/base2new_test.sh" "$dataset" "${SEED_ARG[@]}" || true
    fi
done
sweep_launch
sweep_table --table b2n
sweep_report
