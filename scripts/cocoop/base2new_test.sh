#!/usr/bin/env bash
# CoCoOp. Base-to-novel, step 2: test the model trained by base2new_train.sh (same DATASET and
# SEED) on the new classes: the New column of the tables.
# Usage: bash scripts/cocoop/base2new_test.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/test_new/DATASET/shots_16/CoCoOp/CFG/seed<S>/
# CFG: vit_b16_c4_ep10_batch1_ctxv1 for every dataset, demo for demo.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_test "$@"
