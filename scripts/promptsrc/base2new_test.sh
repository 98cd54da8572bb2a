#!/usr/bin/env bash
# PromptSRC. Base-to-novel, step 2: test the model trained by base2new_train.sh (same DATASET and
# SEED) on the new classes: the New column of the tables.
# Usage: bash scripts/promptsrc/base2new_test.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/test_new/DATASET/shots_16/PromptSRC/CFG/seed<S>/
# CFG: demo for demo, vit_b16 otherwise (ImageNet included, as published).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_test "$@"
