#!/usr/bin/env bash
# CoOp. Cross-dataset transfer and domain generalisation, step 2: test the ImageNet model of
# cross_datasets_train.sh on DATASET, or with no DATASET on the 10 cross-dataset targets and
# the 4 ImageNet variants (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r).
# Usage: bash scripts/coop/cross_datasets_test.sh [DATASET] [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/base2new/test_new/DATASET/shots_16/CoOp/vit_b16_ep50_ctxv1_cross_datasets/seed<S>/
# Config: vit_b16_ep50_ctxv1 (demo.yaml for the demo).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
cross_datasets_test "$@"
