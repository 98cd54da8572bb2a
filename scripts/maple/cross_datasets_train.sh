#!/usr/bin/env bash
# MaPLe. Cross-dataset transfer and domain generalisation, step 1: train MaPLe once on all
# ImageNet classes (16 shots per class), then test on ImageNet (the source column).
# With "demo" the built-in demo is the source (and, in cross_datasets_test.sh, the target).
# Usage: bash scripts/maple/cross_datasets_train.sh [imagenet|demo] [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/train_base/imagenet/shots_16/MaPLe/vit_b16_cross_datasets/seed<S>/
#   (the demo: .../train_base/demo/shots_16/MaPLe/demo_cross_datasets/seed<S>/)
# Config: vit_b16_cross_datasets (for the demo: demo_cross_datasets.yaml if the trainer has one, else demo.yaml).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
cross_datasets_train "$@"
