"""CLIP's stock ViT image tower with deep visual prompts (VPT-deep, as MaPLe and IVLP / PromptSRC place them).

Where the prompts go, as in the published MaPLe and PromptSRC code:
- the first prompts [n, Dv] are appended after the class token and the patch tokens, after the
  positional embedding and before ``ln_pre`` (they get no positional embedding; ``ln_pre`` is
  applied to them as to every other token);
- at the input of blocks 1..J-1 (0-based) the last n positions, the previous block's outputs of
  the prompts, are replaced by that block's prompts (not normalised);
- the feature is the class token's (position 0), through ``ln_post`` and ``proj``.

``ln_pre`` is a per-token layer norm, so normalising the prompts on their own and appending them
to :meth:`ImageTower.embed`'s output is the same computation as normalising the concatenation.
"""
from typing import Sequence

import torch
from torch.utils.checkpoint import checkpoint

from mmrl.model.towers import ImageTower, run_block


def prompted_image_features(tower: ImageTower, images: torch.Tensor, prompts: Sequence[torch.Tensor],
                            recompute: bool = False) -> torch.Tensor:
    """Class-token features [B, d] (not normalised) of ``images`` [B, 3, H, W] with visual prompts.

    ``prompts[0]`` [n, Dv] enters with the patch tokens; ``prompts[j]`` [n, Dv] replaces the last n
    positions at the input of block j (j = 1..len(prompts) - 1). With ``recompute``, blocks whose
    output needs a gradient keep only their input and run again in backward.
    """
    if not prompts:
        raise ValueError("prompted_image_features needs at least the input prompts")
    if len(prompts) > tower.n_layers:
        raise ValueError(f"{len(prompts)} prompt layers for a tower of {tower.n_layers} blocks")
    n = prompts[0].shape[0]
    x = tower.embed(images)  # [1 + P, B, Dv], ln_pre applied
    first = tower.visual.ln_pre(prompts[0].to(x.dtype))
    x = torch.cat([x, first.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=0)
    for i in range(tower.n_layers):
        if 1 <= i < len(prompts):
            deep = prompts[i].to(x.dtype).unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x[:-n], deep], dim=0)
        if recompute and torch.is_grad_enabled() and x.requires_grad:
            x = checkpoint(run_block, tower.blocks[i], x, None, use_reentrant=False)
        else:
            x = run_block(tower.blocks[i], x, None)
    return tower.cls_feature(x)
