"""Trainable parameter counts at ViT-B/16 shapes with the reference configuration
(K = 5, d_r = 512, REP_LAYERS 6..12 = 7 layers, d_v = 768, d_t = 512, d = 512)."""
import torch

from mmrl.model.representation import MMRLLearner, MMRLppLearner, RepArch

WIDTHS = dict(n_tokens=5, rep_layers=(6, 7, 8, 9, 10, 11, 12), rep_dim=512, visual_width=768, text_width=512, embed_dim=512)

# MMRL: R 5*512 = 2,560
#   + 7 visual maps 7*(512*768 + 768) = 2,757,888
#   + 7 text maps   7*(512*512 + 512) = 1,838,592
#   + P_v^r 768*512                    =   393,216
#   = 4,992,256
MMRL_COUNT = 4_992_256

# MMRL++ (PROJ_LORA_DIM 64, RES_LORA_DIM 4): R 5*512 = 2,560
#   + visual SRRA: W 768*512 = 393,216 + 7*(A 768*4 + B 4*512 + bias 768) = 7*5,888 = 41,216
#   + text SRRA:   W 512*512 = 262,144 + 7*(A 512*4 + B 4*512 + bias 512) = 7*4,608 = 32,256
#   + projection update A 768*64 = 49,152 + B 64*512 = 32,768
#   = 2,560 + 434,432 + 294,400 + 81,920 = 813,312
MMRLPP_COUNT = 813_312


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_mmrl_count_at_vit_b16_shapes():
    assert count(MMRLLearner(RepArch(variant="MMRL", **WIDTHS))) == MMRL_COUNT


def test_mmrlpp_count_at_vit_b16_shapes_is_several_times_smaller():
    arch = RepArch(variant="MMRLpp", proj_lora_dim=64, res_lora_dim=4, **WIDTHS)
    learner = MMRLppLearner(arch, torch.zeros(768, 512))
    assert count(learner) == MMRLPP_COUNT
    assert MMRL_COUNT / MMRLPP_COUNT > 6
