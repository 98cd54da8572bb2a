"""Encoders that own the loop over CLIP's stock blocks and splice representation tokens in.

CLIP's modules are used as they are: each block is driven through its own sub-modules
(``ln_1``, ``attn`` with a mask argument, ``ln_2``, ``mlp``), nothing is copied, and no
attribute of CLIP is written. Hidden states are sequence-first, [L, N, D] (LND), as CLIP's.
"""
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_MASKS: Dict[Tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask [length, length]: -inf above the diagonal, 0 elsewhere. Cached."""
    key = (int(length), dtype, torch.device(device))
    mask = _MASKS.get(key)
    if mask is None:
        mask = torch.full((length, length), float("-inf"), device=device).triu_(1).to(dtype)
        _MASKS[key] = mask
    return mask


def run_block(block: nn.Module, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """One ``clip.model.ResidualAttentionBlock`` on x [L, N, D] with the given additive mask."""
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
    return x + block.mlp(block.ln_2(x))


def splice_tokens(x: torch.Tensor, tokens: torch.Tensor, mode: str, beta: Optional[float] = None) -> torch.Tensor:
    """Put K representation tokens [K, D] at positions 1..K of x [L, N, D] (after cls / BOS).

    mode "insert": the sequence grows by K. "replace": the K previous outputs are discarded
    (MMRL). "blend": beta * tokens + (1 - beta) * previous outputs (MMRL++'s PRC).
    """
    k = tokens.shape[0]
    t = tokens.to(x.dtype).unsqueeze(1).expand(-1, x.shape[1], -1)
    if mode == "insert":
        return torch.cat([x[:1], t, x[1:]], dim=0)
    if mode == "replace":
        return torch.cat([x[:1], t, x[1 + k:]], dim=0)
    if mode == "blend":
        if beta is None:
            raise ValueError("splice mode 'blend' needs beta")
        return torch.cat([x[:1], beta * t + (1.0 - beta) * x[1:1 + k], x[1 + k:]], dim=0)
    raise ValueError(f"unknown splice mode {mode!r}; use 'insert', 'replace' or 'blend'")


class _Tower:
    """The loop over a stack of blocks; not an nn.Module so it holds CLIP by reference only."""

    causal: bool = False

    def __init__(self, blocks: nn.Sequential) -> None:
        self.blocks = blocks

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def run(
        self,
        x: torch.Tensor,
        start: int,
        stop: int,
        inserts: Optional[Mapping[int, torch.Tensor]] = None,
        beta: Optional[float] = None,
        recompute: bool = False,
    ) -> torch.Tensor:
        """Blocks [start, stop) (0-based) on x [L, N, D].

        ``inserts`` maps a 0-based block index to tokens [K, D] spliced in before that block:
        at the smallest index they are inserted; at later ones they replace the previous
        token outputs, or, when ``beta`` is given, are blended with them. With ``recompute``,
        a block whose output needs a gradient keeps only its input and runs again in backward.
        """
        if not 0 <= start <= stop <= self.n_layers:
            raise ValueError(f"block range [{start}, {stop}) is outside 0..{self.n_layers}")
        inserts = inserts or {}
        first = min(inserts) if inserts else None
        for i in range(start, stop):
            if i in inserts:
                if i == first:
                    mode = "insert"
                else:
                    mode = "replace" if beta is None else "blend"
                x = splice_tokens(x, inserts[i], mode, beta)
            mask = causal_mask(x.shape[0], x.dtype, x.device) if self.causal else None
            if recompute and torch.is_grad_enabled() and x.requires_grad:
                x = checkpoint(run_block, self.blocks[i], x, mask, use_reentrant=False)
            else:
                x = run_block(self.blocks[i], x, mask)
        return x


class ImageTower(_Tower):
    """CLIP's ViT image encoder, driven block by block. ``visual`` is a clip VisionTransformer."""

    def __init__(self, visual: nn.Module) -> None:
        if not hasattr(visual, "conv1") or not hasattr(visual, "transformer"):
            raise ValueError("the image tower needs a ViT CLIP backbone (e.g. ViT-B/16), not a ResNet")
        super().__init__(visual.transformer.resblocks)
        self.visual = visual

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] -> x [1 + P, B, Dv]: patches, class token, positions, ln_pre."""
        res = self.visual.input_resolution
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (res, res):
            raise ValueError(
                f"CLIP expects images of shape [B, 3, {res}, {res}], got {list(images.shape)}; "
                f"set INPUT.SIZE to ({res}, {res})"
            )
        v = self.visual
        x = v.conv1(images.type(self.dtype))  # [B, Dv, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, P, Dv]
        cls = v.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        return x.permute(1, 0, 2)  # NLD -> LND

    def cls_feature(self, x: torch.Tensor) -> torch.Tensor:
        """x [L, B, Dv] -> ln_post(class token) @ proj, [B, d]."""
        return self.visual.ln_post(x[0]) @ self.visual.proj

    def token_feature(self, x: torch.Tensor, n_tokens: int, proj: torch.Tensor) -> torch.Tensor:
        """x [L, B, Dv] -> mean over positions 1..K of ln_post(token), @ proj [Dv, d] -> [B, d]."""
        tokens = self.visual.ln_post(x[1:1 + n_tokens])  # [K, B, Dv]
        return tokens.mean(dim=0) @ proj.to(tokens.dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Plain CLIP image features (no tokens), [B, d]."""
        return self.cls_feature(self.run(self.embed(images), 0, self.n_layers))


class TextTower(_Tower):
    """CLIP's text encoder, driven block by block, with a causal mask sized to the sequence."""

    causal = True

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__(clip_model.transformer.resblocks)
        self.clip_model = clip_model

    @property
    def dtype(self) -> torch.dtype:
        return self.clip_model.dtype

    def embed(self, tokens: torch.Tensor, trim: bool = True) -> torch.Tensor:
        """tokens [N, 77] -> x [L, N, Dt]: token + positional embeddings of the first L positions.

        With ``trim``, L is the last EOT position + 1, else 77. Under the causal mask no position
        attends to a later one, and representation tokens are spliced in before the EOT, so the
        padding after the last EOT never reaches a feature: dropping it changes an output only by
        float rounding (logits by ~1e-5) and makes the text tower several times cheaper (prompts
        are ~10-30 tokens of 77).
        """
        length = int(tokens.argmax(dim=-1).max()) + 1 if trim else tokens.shape[1]
        m = self.clip_model
        x = m.token_embedding(tokens[:, :length]).type(self.dtype)
        x = x + m.positional_embedding[:length].type(self.dtype)
        return x.permute(1, 0, 2)

    def feature(self, x: torch.Tensor, eot_index: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """x [L, N, Dt] -> ln_final at position eot_index + shift, @ text_projection, [N, d]."""
        rows = x[eot_index + shift, torch.arange(x.shape[1], device=x.device)]  # [N, Dt]
        return self.clip_model.ln_final(rows).type(self.dtype) @ self.clip_model.text_projection

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text features (no tokens), [N, d], computed on all 77 positions as CLIP does."""
        return self.feature(self.run(self.embed(tokens, trim=False), 0, self.n_layers), tokens.argmax(dim=-1))
