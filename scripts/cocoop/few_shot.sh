#!/usr/bin/env bash
# CoCoOp. Few-shot learning: train CoCoOp on all classes of DATASET with 1, 2, 4, 8 and 16 shots per
# class (SHOTS="..." picks some), then test on all classes.
# Usage: bash scripts/cocoop/few_shot.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/few_shot/DATASET/shots_<K>/CoCoOp/CFG/seed<S>/
# CFG: vit_b16_c4_ep10_batch1_ctxv1 for every dataset, demo for demo.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
few_shot "$@"
