"""Zero-shot CLIP classification through the same towers (no representation tokens)."""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.towers import ImageTower, TextTower


class ZeroShotCLIP(nn.Module):
    """logits = logit_scale.exp() * normalised image features . normalised text features."""

    def __init__(self, clip_model: nn.Module, prompts: List[str]) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.image_tower = ImageTower(clip_model.visual)
        self.text_tower = TextTower(clip_model)
        self.register_buffer("text_features", torch.zeros(0), persistent=False)  # [C, d]
        self.set_prompts(prompts)

    @torch.no_grad()
    def set_prompts(self, prompts: List[str]) -> None:
        """Compute the class text features once for these prompts."""
        if not prompts:
            raise ValueError("ZeroShotCLIP needs at least one class prompt")
        tokens = tokenize(prompts).to(self.clip_model.text_projection.device)
        self.text_features = F.normalize(self.text_tower.encode(tokens), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] -> logits [B, C]."""
        f = F.normalize(self.image_tower.encode(images), dim=-1)
        return self.clip_model.logit_scale.exp() * f @ self.text_features.to(f.dtype).t()
