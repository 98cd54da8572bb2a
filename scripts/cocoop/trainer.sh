# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=CoCoOp
# The published CoCoOp runs every protocol (base-to-novel, few-shot, cross-dataset and domain
# generalisation, ImageNet included) with one config.
ONE_CFG=vit_b16_c4_ep10_batch1_ctxv1
