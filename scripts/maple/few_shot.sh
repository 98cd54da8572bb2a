#!/usr/bin/env bash
# MaPLe. Few-shot learning: train MaPLe on all classes of DATASET with 1, 2, 4, 8 and 16 shots per
# class (SHOTS="..." picks some), then test on all classes.
# Usage: bash scripts/maple/few_shot.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/few_shot/DATASET/shots_<K>/MaPLe/CFG/seed<S>/
# CFG: vit_b16_imagenet for imagenet, demo for demo, vit_b16_few_shot otherwise.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
few_shot "$@"
