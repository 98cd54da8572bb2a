#!/usr/bin/env bash
# CoCoOp. Cross-dataset transfer and domain generalisation, step 1: train CoCoOp once on all
# ImageNet classes (16 shots per class), then test on ImageNet (the source column).
# With "demo" the built-in demo is the source (and, in cross_datasets_test.sh, the target).
# Usage: bash scripts/cocoop/cross_datasets_train.sh [imagenet|demo] [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/train_base/imagenet/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_cross_datasets/seed<S>/
#   (the demo: .../train_base/demo/shots_16/CoCoOp/demo_cross_datasets/seed<S>/)
# Config: vit_b16_c4_ep10_batch1_ctxv1 (demo.yaml for the demo).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
cross_datasets_train "$@"
