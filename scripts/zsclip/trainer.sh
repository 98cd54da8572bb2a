# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=ZeroshotCLIP
# The zero-shot baseline learns nothing: its "training" runs only evaluate (and its test runs
# need no trained model), one config serves every dataset, and every seed gives the same
# accuracy, so one seed is run by default.
EVAL_ONLY=1
ONE_CFG=vit_b16
DEFAULT_SEEDS=(1)
