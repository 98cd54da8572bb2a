"""PromptSRC (Khattak et al., ICCV 2023): independent deep prompts in both towers, regularised by the
frozen CLIP, and Gaussian-weighted prompt aggregation (GPA) over epochs.

Trainable tensors, named as in the published checkpoints:
- ``prompt_learner.ctx`` [n_t, Dt]: the text context at the input (phrase embeddings or normal(0, 0.02));
- ``text_encoder.transformer.resblocks.{j}.VPT_shallow`` [n_t, Dt], j = 1..J_t-1: deep text prompts;
- ``image_encoder.VPT`` [n_v, Dv]: the vision prompts at the input;
- ``image_encoder.transformer.resblocks.{j}.VPT_shallow`` [n_v, Dv], j = 1..J_v-1: deep vision prompts.
All prompts but a phrase-initialised ctx are normal(0, 0.02). The published code draws the vision
prompts, then the deep text prompts, while it builds CLIP (between CLIP's own initialisations, which
the loaded weights then overwrite), and ctx last; ours draws them in that order without CLIP's draws.

The objective (one frozen CLIP gives both branches; the frozen features are CLIP's own):
  CE(s * f . w) + KL(softmax(z_zs) || softmax(z)) summed / (B C)
  + TEXT_LOSS_WEIGHT * mean |w - w_zs| + IMAGE_LOSS_WEIGHT * mean |f - f_zs|
with s = CLIP's logit_scale.exp(), f, w the prompted image and text features, f_zs the frozen image
features, w_zs the frozen text features averaged (before normalisation) over 60 ImageNet templates,
and z_zs = s * f_zs . w_zs (all features L2-normalised).
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.deep_prompts import check_prompt_depth, first_context
from mmrl.model.prompted_image import prompted_image_features
from mmrl.model.prompted_text import PromptedText, context_prompts
from mmrl.model.representation import clip_widths
from mmrl.model.templates import IMAGENET_TEMPLATES
from mmrl.model.towers import ImageTower, TextTower

# Prompts per text-tower call when the frozen text features are computed once (60 templates x C classes).
_FROZEN_TEXT_CHUNK = 1000


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def gpa_weights(max_epoch: int, mean: float, std: float) -> List[float]:
    """GPA's weight of each epoch 1..max_epoch: the normal density N(mean, std) at the epoch, normalised
    to sum 1 (in float64 with numpy's exp and a sequential sum, as the published code: the same bits)."""
    if max_epoch < 1:
        raise ValueError(f"OPTIM.MAX_EPOCH must be at least 1 for GPA, got {max_epoch}")
    if std <= 0:
        raise ValueError(f"TRAINER.PROMPTSRC.GPA_STD must be positive, got {std}")
    density = np.array([(1 / (std * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((e - mean) / std) ** 2)
                        for e in range(1, max_epoch + 1)])
    total = sum(density)
    if total == 0.0:
        raise ValueError(f"TRAINER.PROMPTSRC.GPA_MEAN {mean} / GPA_STD {std} give every one of the {max_epoch} "
                         "epochs a weight of 0 in float64: put the mean nearer the epochs")
    return [float(w) for w in density / total]


class _Block(nn.Module):
    """A block's deep prompts, named as the published block's parameter (``VPT_shallow``)."""

    def __init__(self, n: int, width: int) -> None:
        super().__init__()
        self.VPT_shallow = nn.Parameter(torch.empty(n, width))
        nn.init.normal_(self.VPT_shallow, std=0.02)


def _deep_blocks(n: int, width: int, depth: int) -> nn.Module:
    """``transformer.resblocks.{1..depth-1}.VPT_shallow``; block 0's prompts live elsewhere."""
    transformer = nn.Module()
    transformer.resblocks = nn.ModuleDict({str(j): _Block(n, width) for j in range(1, depth)})
    return transformer


class PromptSRCPrompts(nn.Module):
    """Every trainable tensor of PromptSRC, in the published key layout (see the module docstring)."""

    def __init__(self, clip_model: nn.Module, n_ctx_text: int, n_ctx_vision: int, ctx_init: str,
                 depth_text: int, depth_vision: int) -> None:
        super().__init__()
        d_v, d_t, _ = clip_widths(clip_model)
        for key, value in (("N_CTX_TEXT", n_ctx_text), ("N_CTX_VISION", n_ctx_vision)):
            if value < 1:
                raise ValueError(f"TRAINER.PROMPTSRC.{key} must be at least 1, got {value}")
        check_prompt_depth("TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", depth_text, len(clip_model.transformer.resblocks))
        check_prompt_depth("TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", depth_vision,
                           len(clip_model.visual.transformer.resblocks))
        self.image_encoder = nn.Module()
        vpt = torch.empty(n_ctx_vision, d_v)
        nn.init.normal_(vpt, std=0.02)
        self.image_encoder.VPT = nn.Parameter(vpt)
        self.image_encoder.transformer = _deep_blocks(n_ctx_vision, d_v, depth_vision)
        self.text_encoder = nn.Module()
        self.text_encoder.transformer = _deep_blocks(n_ctx_text, d_t, depth_text)
        ctx, self.prefix = first_context(clip_model, n_ctx_text, ctx_init)
        self.prompt_learner = nn.Module()
        self.prompt_learner.ctx = nn.Parameter(ctx)
        self.n_ctx_text = int(n_ctx_text)

    def text_prompts(self) -> List[torch.Tensor]:
        deep = self.text_encoder.transformer.resblocks
        return [self.prompt_learner.ctx] + [deep[str(j)].VPT_shallow for j in range(1, len(deep) + 1)]

    def vision_prompts(self) -> List[torch.Tensor]:
        deep = self.image_encoder.transformer.resblocks
        return [self.image_encoder.VPT] + [deep[str(j)].VPT_shallow for j in range(1, len(deep) + 1)]


@torch.no_grad()
def frozen_text_features(tower: TextTower, classnames: Sequence[str],
                         templates: Sequence[str] = IMAGENET_TEMPLATES) -> torch.Tensor:
    """The frozen CLIP's text features [C, d] of each class, averaged over ``templates`` before any
    normalisation (as the published teacher features; normalised where they are used). The T x C
    prompts run in chunks, each trimmed at its last end-of-text token."""
    names = [name.replace("_", " ") for name in classnames]
    prompts = [template.replace("{}", name) for template in templates for name in names]
    device = tower.clip_model.text_projection.device
    parts = []
    for start in range(0, len(prompts), _FROZEN_TEXT_CHUNK):
        tokens = tokenize(prompts[start:start + _FROZEN_TEXT_CHUNK]).to(device)
        x = tower.run(tower.embed(tokens), 0, tower.n_layers)
        parts.append(_wide(tower.feature(x, tokens.argmax(dim=-1))))
    return torch.cat(parts).view(len(templates), len(names), -1).mean(dim=0)


def promptsrc_loss(logits: torch.Tensor, zs_logits: torch.Tensor, labels: torch.Tensor,
                   f: torch.Tensor, f_zs: torch.Tensor, w: torch.Tensor, w_zs: torch.Tensor,
                   text_weight: float, image_weight: float, batch_share: float = 1.0,
                   class_share: float = 1.0) -> Dict[str, torch.Tensor]:
    """The terms of PromptSRC's loss and their sum ("loss").

    Split over processes (one holding B_r of a global batch of B images, and every class), the
    per-image terms are weighted by ``batch_share`` B_r / B and the text term by ``class_share``
    (1 / processes), so the processes' losses sum to the one-process loss.
    """
    ce = F.cross_entropy(logits, labels)
    kl = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zs_logits, dim=1), reduction="sum",
                  log_target=True) / logits.numel()
    text = F.l1_loss(w, w_zs.to(w.dtype), reduction="mean") * text_weight
    image = F.l1_loss(f, f_zs.to(f.dtype), reduction="mean") * image_weight
    loss = batch_share * (ce + kl + image) + class_share * text
    return {"loss": loss, "ce": ce, "kl": kl, "text": text, "image": image}


class PromptSRCCLIP(nn.Module):
    """One frozen CLIP driven with PromptSRC's prompts (prompted branch) and without (frozen branch).
    ``trainable`` is the module the trainer registers (published key names)."""

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx_text: int, n_ctx_vision: int,
                 ctx_init: str, depth_text: int, depth_vision: int, text_loss_weight: float,
                 image_loss_weight: float, recompute: bool = False,
                 templates: Sequence[str] = IMAGENET_TEMPLATES) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.trainable = PromptSRCPrompts(clip_model, n_ctx_text, n_ctx_vision, ctx_init, depth_text, depth_vision)
        self.image_tower = ImageTower(clip_model.visual)
        self.text_loss_weight = float(text_loss_weight)
        self.image_loss_weight = float(image_loss_weight)
        self.recompute = bool(recompute)
        self.templates = tuple(templates)  # of the frozen text features
        self.register_buffer("w_zs", torch.zeros(0), persistent=False)  # [C, d], L2-normalised
        self.set_classes(classnames)

    def set_classes(self, classnames: Sequence[str]) -> None:
        self.text = PromptedText(self.clip_model, context_prompts(self.trainable.prefix, classnames),
                                    self.trainable.n_ctx_text)
        self.w_zs = F.normalize(frozen_text_features(self.text.tower, classnames, self.templates), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip_model.logit_scale.exp()

    def text_features(self) -> torch.Tensor:
        """Prompted text features [C, d], L2-normalised."""
        text = self.trainable.text_prompts()
        return F.normalize(_wide(self.text(text[0], text[1:])), dim=-1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Prompted image features [B, d], L2-normalised."""
        f = prompted_image_features(self.image_tower, images, self.trainable.vision_prompts(), self.recompute)
        return F.normalize(_wide(f), dim=-1)

    def _scaled(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with torch.autocast(f.device.type, enabled=False):
            return self.logit_scale.to(f.dtype) * f @ w.to(f.dtype).t()

    def logits(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return self._scaled(self.image_features(images), text_features)

    def forward_train(self, images: torch.Tensor, labels: torch.Tensor, batch_share: float = 1.0,
                      class_share: float = 1.0) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """(loss terms, prompted logits [B, C])."""
        w = self.text_features()
        f = self.image_features(images)
        logits = self._scaled(f, w)
        with torch.no_grad():
            f_zs = F.normalize(_wide(self.image_tower.encode(images)), dim=-1)
            zs_logits = self._scaled(f_zs, self.w_zs)
        terms = promptsrc_loss(logits, zs_logits, labels, f, f_zs, w, self.w_zs, self.text_loss_weight,
                               self.image_loss_weight, batch_share, class_share)
        return terms, logits
