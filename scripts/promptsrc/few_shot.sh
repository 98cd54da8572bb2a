#!/usr/bin/env bash
# PromptSRC. Few-shot learning: train PromptSRC on all classes of DATASET with 1, 2, 4, 8 and 16 shots per
# class (SHOTS="..." picks some), then test on all classes.
# Usage: bash scripts/promptsrc/few_shot.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/few_shot/DATASET/shots_<K>/PromptSRC/CFG/seed<S>/
# CFG: demo for demo, vit_b16_few_shot otherwise (ImageNet included, as published).
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
few_shot "$@"
