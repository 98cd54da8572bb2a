#!/usr/bin/env bash
# CoCoOp. Base-to-novel, step 1: train CoCoOp on the base classes of DATASET (16 shots per class),
# then test on the base classes: the Base column of the tables.
# Usage: bash scripts/cocoop/base2new_train.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/train_base/DATASET/shots_16/CoCoOp/CFG/seed<S>/
# CFG: vit_b16_c4_ep10_batch1_ctxv1 for every dataset, demo for demo.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_train "$@"
