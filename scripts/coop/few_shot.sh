#!/usr/bin/env bash
# CoOp. Few-shot learning: train CoOp on all classes of DATASET with 1, 2, 4, 8 and 16 shots per
# class (SHOTS="..." picks some), then test on all classes.
# Usage: bash scripts/coop/few_shot.sh DATASET [SEED]   (no SEED: seeds 1 2 3)
# Results: $OUTPUT/few_shot/DATASET/shots_<K>/CoOp/CFG/seed<S>/
# CFG by shot count: vit_b16_ep50 (1, 2 shots), vit_b16_ep100 (4, 8), vit_b16 (16); ImageNet vit_b16_ep50; demo for demo.
# Environment (DATA, OUTPUT, PYTHON, OPTS, FORCE, SHOTS): see scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
load_trainer "$(dirname "${BASH_SOURCE[0]}")"
# One shot group per config (trainer.sh's cfg_for reads the group from SHOTS), in one sweep.
protocol_begin
own_sweep=$OWN_SWEEP  # few_shot's own protocol_begin resets it
seeds=${SEEDS:-}  # and its set_seeds turns SEEDS into its first group's seed array
for group_cfg in vit_b16_ep50 vit_b16_ep100 vit_b16; do
    group=()
    for shots in ${SHOTS:-1 2 4 8 16}; do
        if [[ $(coop_shots_cfg "$shots") == "$group_cfg" ]]; then group+=("$shots"); fi
    done
    if [[ ${#group[@]} -gt 0 ]]; then SEEDS=$seeds SHOTS="${group[*]}" few_shot "$@"; fi
done
OWN_SWEEP=$own_sweep
protocol_end
