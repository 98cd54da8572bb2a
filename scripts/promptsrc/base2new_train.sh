#!/usr/bin/env bash
# PromptSRC. Base-to-novel, step 1: train PromptSRC on the base classes of DATASET (16 shots per class),
# then test on the base classes: the Base column of the tables.
# Usage: bash scripts/promptsrc/base2new_train.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/train_base/DATASET/shots_16/PromptSRC/CFG/seed<S>/
# CFG: demo for demo, vit_b16 otherwise (ImageNet included, as published).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_train "$@"
