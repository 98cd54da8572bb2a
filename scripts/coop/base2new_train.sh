#!/usr/bin/env bash
# CoOp. Base-to-novel, step 1: train CoOp on the base classes of DATASET (16 shots per class),
# then test on the base classes: the Base column of the tables.
# Usage: bash scripts/coop/base2new_train.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/train_base/DATASET/shots_16/CoOp/CFG/seed<S>/
# CFG: vit_b16_ctxv1 (ImageNet: vit_b16_ep50_ctxv1), demo for demo; see trainer.sh.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_train "$@"
