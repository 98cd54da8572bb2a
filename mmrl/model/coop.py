"""CoOp and CoCoOp on a frozen CLIP: learned context vectors in the class prompts.

CoOp (Zhou et al., IJCV 2022) learns the context of ``"X X ... X <class name>."``: one context for
every class, or one per class (CSC), the class name at the end, in the middle or in front.
CoCoOp (Zhou et al., CVPR 2022) adds a meta-network that shifts the context by a token computed
from each image: every image gets its own class prompts.

The learner (``prompt_learner`` in the published code, the only module that trains) holds the
published tensors under their published names: ``ctx`` and CoCoOp's ``meta_net.linear1`` /
``meta_net.linear2``. The frozen token embeddings the published learner also saves
(``token_prefix`` / ``token_suffix``) live in the text encoder here and are never saved.
"""
from collections import OrderedDict
from typing import Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.checkpoint import check_learned_tensors
from mmrl.model.prompted_text import PromptedText, class_token_layout, context_init, context_prompts
from mmrl.model.towers import ImageTower

# Entries of a published prompt learner's state dict that are frozen token embeddings of the class
# names it was trained on: the published loader drops them, and so does ours.
FROZEN_PUBLISHED_KEYS = ("token_prefix", "token_suffix")


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class ContextLearner(nn.Module):
    """The trainable tensors: ``ctx`` [n_ctx, D] (or [C, n_ctx, D]), and with ``vis_dim`` CoCoOp's
    meta-network Linear(vis_dim, vis_dim // 16) -> ReLU -> Linear(vis_dim // 16, D). fp32 always."""

    def __init__(self, ctx: torch.Tensor, vis_dim: Optional[int] = None) -> None:
        super().__init__()
        self.ctx = nn.Parameter(ctx.float().clone())
        if vis_dim is not None:
            width = ctx.shape[-1]
            self.meta_net = nn.Sequential(OrderedDict([
                ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
                ("relu", nn.ReLU(inplace=True)),
                ("linear2", nn.Linear(vis_dim // 16, width)),
            ]))

    @property
    def n_ctx(self) -> int:
        return self.ctx.shape[-2]

    def load_published(self, state_dict: Mapping[str, torch.Tensor], where: str) -> None:
        """Strict load of a published (or our) prompt learner's state dict, its frozen token
        embeddings ignored; a missing, extra or mis-shaped key is an error naming it."""
        state = {k: v for k, v in state_dict.items() if k not in FROZEN_PUBLISHED_KEYS}
        own = self.state_dict()
        hint = "it was trained with another N_CTX, CSC, backbone or method"
        check_learned_tensors(own, state, where, hint)
        extra = sorted(set(state) - set(own))
        if extra:
            raise ValueError(f"{where} has unexpected {extra[0]!r}; {hint}")
        self.load_state_dict({k: v.float() for k, v in state.items()})


class PromptCLIP(nn.Module):
    """One frozen CLIP with CoOp's learned context (``meta_net`` False) or CoCoOp's (True).

    Logits are CLIP's: ``logit_scale.exp() * normalised image features . normalised text features``,
    per image for CoCoOp. Features and logits are fp32 in every precision.
    """

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, ctx_init: str = "",
                 csc: bool = False, position: str = "end", meta_net: bool = False,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.image_tower = ImageTower(clip_model.visual)
        ctx, prompt_prefix = context_init(clip_model, n_ctx, ctx_init, len(classnames) if csc else None, generator)
        self.prompt_prefix = prompt_prefix
        vis_dim = clip_model.visual.output_dim if meta_net else None
        self.learner = ContextLearner(ctx, vis_dim).to(clip_model.text_projection.device)
        self.position = position
        self.set_classnames(classnames)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        """The class prompts, with the learned context (the frozen part rebuilt for these names)."""
        prompts = context_prompts(self.prompt_prefix, classnames)
        tokens, ctx_index = class_token_layout(prompts, classnames, self.learner.n_ctx, self.position)
        self.text = PromptedText(self.clip_model, prompts, self.learner.n_ctx, ctx_index=ctx_index, tokens=tokens)

    @property
    def conditional(self) -> bool:
        return hasattr(self.learner, "meta_net")

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip_model.logit_scale.exp().float()

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image features [B, d] (CLIP is frozen: no graph)."""
        with torch.no_grad():
            return F.normalize(_wide(self.image_tower.encode(images)), dim=-1)

    def text_features(self) -> torch.Tensor:
        """CoOp: normalised text features [C, d] (grad flows to ``ctx``)."""
        return F.normalize(_wide(self.text(self.learner.ctx)), dim=-1)

    def conditioned_context(self, image_features: torch.Tensor) -> torch.Tensor:
        """CoCoOp: ctx + meta_net(image feature) per image, [B, n_ctx, D]."""
        bias = self.learner.meta_net(image_features)  # [B, D]
        return self.learner.ctx.unsqueeze(0) + bias.unsqueeze(1)

    def logits(self, images: torch.Tensor, text_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, C]. CoOp scores against ``text_features`` (computed here when None); CoCoOp runs
        every class prompt with each image's context."""
        f = self.image_features(images)
        if self.conditional:
            w = self.text.per_image(self.conditioned_context(f))  # [B, C, d]
        else:
            w = self.text_features() if text_features is None else text_features
        # fp32 even under autocast: near 100, half-precision logits are 0.06 apart.
        with torch.autocast(f.device.type, enabled=False):
            if self.conditional:
                w = F.normalize(_wide(w), dim=-1).to(f.dtype)
                return self.logit_scale * torch.einsum("bd,bcd->bc", f, w)
            return self.logit_scale * f @ _wide(w).to(f.dtype).t()

    def forward_train(self, images: torch.Tensor, labels: torch.Tensor, share: float = 1.0
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C], loss): cross-entropy, the mean over the batch times ``share`` (this
        process's fraction of a global batch; 1 in one process)."""
        logits = self.logits(images)
        return logits, F.cross_entropy(logits, labels) * share
