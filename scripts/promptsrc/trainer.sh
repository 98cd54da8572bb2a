# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=PromptSRC

# The published code runs one config per protocol for every dataset, ImageNet included:
# base-to-novel vit_b16, few-shot vit_b16_few_shot (its per-dataset GPA values are in
# dataset_overrides.yaml), cross-dataset/DG vit_b16_cross_datasets.
cfg_for() {
    local protocol=$1 dataset=$2
    if [[ $dataset == demo ]]; then
        echo demo
    elif [[ $protocol == cd ]]; then
        echo vit_b16_cross_datasets
    elif [[ $protocol == fs ]]; then
        echo vit_b16_few_shot
    else
        echo vit_b16
    fi
}
