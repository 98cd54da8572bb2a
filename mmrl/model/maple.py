"""MaPLe (Khattak et al., CVPR 2023): multi-modal prompts coupled from the text to the vision branch.

Trainable tensors, named as in the published checkpoints (under ``prompt_learner.``):
- ``ctx`` [n, Dt]: the text context at the input, from the phrase's token embeddings (CTX_INIT, when
  set and n <= 4) or normal(0, 0.02);
- ``proj`` Linear(Dt, Dv): the vision prompts at the input, ``proj(ctx)``;
- ``compound_prompts_text.{j}`` [n, Dt], j = 0..J-2: the text prompts of blocks 1..J-1, normal(0, 0.02);
- ``compound_prompt_projections.{j}`` Linear(Dt, Dv): the vision prompts of blocks 1..J-1,
  ``compound_prompt_projections[j](compound_prompts_text[j])``; one Linear initialised and deep-copied,
  so all start equal.

Initialisation order (one random stream, as the published learner draws it after CLIP is built):
ctx (only when random), proj (weight, bias), the J-1 compound text prompts, the one Linear that is copied.
Loss: cross-entropy of CLIP's ``logit_scale.exp()`` times cosine logits.
"""
import copy
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.deep_prompts import check_prompt_depth, first_context
from mmrl.model.prompted_image import prompted_image_features
from mmrl.model.prompted_text import PromptedText, context_prompts
from mmrl.model.representation import clip_depth, clip_widths
from mmrl.model.towers import ImageTower


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class MaPLePromptLearner(nn.Module):
    """Every trainable tensor of MaPLe (the published ``MultiModalPromptLearner``'s)."""

    def __init__(self, clip_model: nn.Module, n_ctx: int, ctx_init: str, depth: int) -> None:
        super().__init__()
        d_v, d_t, _ = clip_widths(clip_model)
        if n_ctx < 1:
            raise ValueError(f"TRAINER.MAPLE.N_CTX must be at least 1, got {n_ctx}")
        check_prompt_depth("TRAINER.MAPLE.PROMPT_DEPTH", depth, clip_depth(clip_model))
        ctx, self.prefix = first_context(clip_model, n_ctx, ctx_init)
        self.proj = nn.Linear(d_t, d_v)
        self.ctx = nn.Parameter(ctx)
        self.compound_prompts_text = nn.ParameterList([nn.Parameter(torch.empty(n_ctx, d_t)) for _ in range(depth - 1)])
        for p in self.compound_prompts_text:
            nn.init.normal_(p, std=0.02)
        one = nn.Linear(d_t, d_v)
        self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(one) for _ in range(depth - 1)])
        self.n_ctx, self.depth = int(n_ctx), int(depth)

    def forward(self) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(text prompts, vision prompts), J of each: the input's, then blocks 1..J-1's."""
        text = [self.ctx, *self.compound_prompts_text]
        vision = [self.proj(self.ctx)] + [f(p) for f, p in zip(self.compound_prompt_projections,
                                                               self.compound_prompts_text)]
        return text, vision


class MaPLeCLIP(nn.Module):
    """A frozen CLIP driven with MaPLe's prompts. ``trainable`` is the module the trainer registers:
    its state-dict keys are the published checkpoints' (``prompt_learner.*``)."""

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, ctx_init: str, depth: int,
                 recompute: bool = False) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.trainable = nn.Module()
        self.trainable.prompt_learner = MaPLePromptLearner(clip_model, n_ctx, ctx_init, depth)
        self.image_tower = ImageTower(clip_model.visual)
        self.recompute = bool(recompute)
        self.set_classes(classnames)

    @property
    def learner(self) -> MaPLePromptLearner:
        return self.trainable.prompt_learner

    def set_classes(self, classnames: Sequence[str]) -> None:
        self.text = PromptedText(self.clip_model, context_prompts(self.learner.prefix, classnames), self.learner.n_ctx)

    def text_features(self) -> torch.Tensor:
        """[C, d], L2-normalised."""
        text, _ = self.learner()
        return F.normalize(_wide(self.text(text[0], text[1:])), dim=-1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, d], L2-normalised."""
        _, vision = self.learner()
        return F.normalize(_wide(prompted_image_features(self.image_tower, images, vision, self.recompute)), dim=-1)

    def logits(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        f = self.image_features(images)
        with torch.autocast(f.device.type, enabled=False):
            return self.clip_model.logit_scale.exp().to(f.dtype) * f @ text_features.to(f.dtype).t()

    def forward_train(self, images: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits [B, C])."""
        logits = self.logits(images, self.text_features())
        return F.cross_entropy(logits, labels), logits
