# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=CoOp

# The published configs of each protocol, under their published names (one of which, vit_b16, is
# not the base-to-novel config here), so this folder chooses them itself in place of common.sh's
# per-protocol names:
#   base-to-novel      vit_b16_ctxv1 ("a photo of a", 200 epochs), ImageNet vit_b16_ep50_ctxv1
#                      (the CoCoOp paper's CoOp runs);
#   few-shot           by shot count, as the CoOp paper: vit_b16_ep50 for 1 and 2 shots,
#                      vit_b16_ep100 for 4 and 8, vit_b16 (200 epochs) for 16; ImageNet vit_b16_ep50;
#   cross-dataset/DG   vit_b16_ep50_ctxv1 (trained on ImageNet, 16 shots, all classes).
# few_shot.sh runs each shot group under its config (SHOTS holds one group at a time).
cfg_for() {
    local protocol=$1 dataset=$2
    if [[ $dataset == demo ]]; then
        echo demo
    elif [[ $protocol == cd || ($protocol == b2n && $dataset == imagenet) ]]; then
        echo vit_b16_ep50_ctxv1
    elif [[ $protocol == b2n ]]; then
        echo vit_b16_ctxv1
    elif [[ $dataset == imagenet ]]; then
        echo vit_b16_ep50
    else
        coop_shots_cfg "${SHOTS%% *}"
    fi
}

# The few-shot config of a shot count (CoOp's epochs grow with the shots).
coop_shots_cfg() {
    if [[ $1 =~ ^[0-9]+$ && $1 -le 2 ]]; then
        echo vit_b16_ep50
    elif [[ $1 =~ ^[0-9]+$ && $1 -le 8 ]]; then
        echo vit_b16_ep100
    else
        echo vit_b16
    fi
}
