# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=PromptSRC

# The published code runs one config per protocol for every dataset, ImageNet included:
# base-to-novel vit_b16, few-shot vit_b16_few_shot (its per-dataset GPA values are in
# dataset_overrides.yaml), cross-dataset/DG vit_b16_cross_datasets.
IMAGENET_CFG=0
