#!/usr/bin/env bash
# Zero-shot CLIP baseline. Cross-dataset transfer, source: evaluate zero-shot CLIP on all ImageNet classes
# (or on the built-in demo with "demo").
# Usage: bash scripts/zsclip/cross_datasets_train.sh [imagenet|demo] [SEED]   (no SEED: seed 1 only; zero-shot CLIP has nothing
# to train, so every seed gives the same accuracy)
# Results: $OUTPUT/base2new/train_base/imagenet/shots_16/ZeroshotCLIP/vit_b16_cross_datasets/seed<S>/
# CFG: vit_b16 for every dataset (demo for demo); cross-dataset runs use the folder name
# <CFG>_cross_datasets so that they never share seed folders with base-to-novel runs.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
cross_datasets_train "$@"
