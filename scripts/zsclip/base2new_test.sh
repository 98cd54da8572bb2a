#!/usr/bin/env bash
# Zero-shot CLIP baseline. Base-to-novel, new side: evaluate zero-shot CLIP on the new classes of DATASET.
# Usage: bash scripts/zsclip/base2new_test.sh DATASET [SEED]   (no SEED: seed 1 only; zero-shot CLIP has nothing
# to train, so every seed gives the same accuracy)
# Results: $OUTPUT/base2new/test_new/DATASET/shots_16/ZeroshotCLIP/CFG/seed<S>/
# CFG: vit_b16 for every dataset (demo for demo); cross-dataset runs use the folder name
# <CFG>_cross_datasets so that they never share seed folders with base-to-novel runs.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
base2new_test "$@"
