# shellcheck shell=bash
# What the protocol scripts of this folder need to know about their trainer. Sourced by
# scripts/common.sh (load_trainer), never run; the sweeps find a trainer's folder by it.
TRAINER=PromptSRC
