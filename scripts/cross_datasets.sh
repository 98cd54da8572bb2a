#!/usr/bin/env bash
# Cross-dataset transfer and domain generalisation sweep: train once on ImageNet, test on the
# 10 cross-dataset targets and the 4 ImageNet variants (scripts/<trainer>/cross_datasets_*.sh),
# then print the cross-dataset and domain-generalisation tables.
# Usage: bash scripts/cross_datasets.sh TRAINER [SEED]   (TRAINER: MMRL, MMRLpp, ZeroshotCLIP: any with a scripts/<folder>/trainer.sh)
#   DATASETS="..." restricts the targets (DATASETS=demo: the built-in demo is source and
#   target); targets whose folder is missing under $DATA are skipped and listed, and all of
#   them are when ImageNet is.
# Results: $OUTPUT/base2new/train_base/imagenet/shots_16/<trainer>/vit_b16_cross_datasets/seed<S>/
#          $OUTPUT/base2new/test_new/<target>/shots_16/<trainer>/vit_b16_cross_datasets/seed<S>/
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
sort_by_data ${DATASETS:-$XD_TARGETS $DG_TARGETS}
TARGETS=("${HAVE_DATA[@]}")
TRAINED=()
UNTRAINED=()
DG=0
HAVE_IMAGENET=0
if [[ -n ${DATA:-} && -n $("$PYTHON" -m mmrl.data.check --root "$DATA" --present-configs configs/datasets/imagenet.yaml) ]]; then
    HAVE_IMAGENET=1
fi
for dataset in "${TARGETS[@]}"; do
    source_dataset=$(cd_source_of "$dataset")
    if [[ $source_dataset == imagenet && $HAVE_IMAGENET == 0 ]]; then
        NO_DATA+=("$dataset (no imagenet to train on)")
        continue
    fi
    # The source is trained once, before its first target; a failed training skips its targets.
    if [[ " ${TRAINED[*]} ${UNTRAINED[*]} " != *" $source_dataset "* ]]; then
        if sweep_step "$DIR/cross_datasets_train.sh" "$source_dataset" "${SEED_ARG[@]}"; then
            TRAINED+=("$source_dataset")
        else
            UNTRAINED+=("$source_dataset")
        fi
    fi
    if [[ " ${TRAINED[*]} " == *" $source_dataset "* ]]; then
        sweep_step "$DIR/cross_datasets_test.sh" "$dataset" "${SEED_ARG[@]}" || true
    fi
    if [[ " $DG_TARGETS " == *" $dataset "* ]]; then DG=1; fi
done
sweep_launch
sweep_table --table xd
if [[ $DG == 1 ]]; then
    sweep_table --table dg
fi
sweep_report
