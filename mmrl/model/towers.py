"""Encoders that own the loop over CLIP's stock blocks and splice representation tokens in.

CLIP's modules are used as they are: each block is driven through its own sub-modules
(``ln_1``, ``attn`` with a mask argument, ``ln_2``, ``mlp``), nothing is copied, and no
attribute of CLIP is written. Hidden states are sequence-first, [L, N, D] (LND), as CLIP's.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from clip.model import QuickGELU

_MASKS: Dict[Tuple[int, torch.dtype, torch.device], torch.Tensor] = {}
_PREFIX_MASKS: Dict[Tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}
# Own positions of at most this many tokens (prompts x length) form one class group; a longer set of
# prompts of one length is split. With RECOMPUTE on one group's activations are live at a time in
# backward, and at this size (a 16 MB hidden state at width 512, fp32) the allocator reuses a step's
# tensors instead of mapping fresh pages for each, which at 1000 classes costs ~1 s per step.
GROUP_POSITIONS = 2048


def causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask [length, length]: -inf above the diagonal, 0 elsewhere. Cached."""
    key = (int(length), dtype, torch.device(device))
    mask = _MASKS.get(key)
    if mask is None:
        mask = torch.full((length, length), float("-inf"), device=device).triu_(1).to(dtype)
        _MASKS[key] = mask
    return mask


def prefix_causal_mask(prefix: int, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive mask [length, prefix + length]: every query sees the whole prefix, then causal. Cached."""
    key = (int(prefix), int(length), dtype, torch.device(device))
    mask = _PREFIX_MASKS.get(key)
    if mask is None:
        mask = torch.cat([torch.zeros(length, prefix, device=device), causal_mask(length, torch.float32, device)],
                         dim=1).to(dtype)
        _PREFIX_MASKS[key] = mask
    return mask


class _QuickGELU(torch.autograd.Function):
    """CLIP's QuickGELU, x * sigmoid(1.702 x), computed in forward exactly as CLIP's module does (so
    every output is bit for bit the same) and differentiated in one fused kernel: its derivative is
    SiLU's at 1.702 x, so backward is ``silu_backward`` on the 1.702 x that forward computes anyway.
    Autograd on the module's expression keeps two hidden-sized tensors (x and the sigmoid) and runs
    five elementwise kernels in backward; this keeps one and runs one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = 1.702 * x
        ctx.save_for_backward(y)
        # sigmoid(y) * x in place of x * sigmoid(y): the same products (multiplication commutes), one
        # hidden-sized tensor allocated fewer per block.
        return torch.sigmoid(y).mul_(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad, y)


def mlp_hidden(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The block's MLP up to its output projection: act(c_fc(h)), QuickGELU through
    :class:`_QuickGELU` when a gradient flows."""
    mlp = block.mlp
    a = mlp.c_fc(h)
    if not isinstance(mlp.gelu, QuickGELU):
        return mlp.gelu(a)
    if a.requires_grad:
        return _QuickGELU.apply(a)
    # Without a gradient, the module's arithmetic in place: the same values, two hidden-sized tensors
    # live instead of three.
    y = 1.702 * a
    return y.sigmoid_().mul_(a)


def run_mlp(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The block's MLP on h, its own weights (CLIP's ``mlp`` is c_fc, the activation, c_proj)."""
    return block.mlp.c_proj(mlp_hidden(block, h))


def run_block(block: nn.Module, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """One ``clip.model.ResidualAttentionBlock`` on x [L, N, D] with the given additive mask.

    The block's own weights, with the attention written out (:func:`_heads`, :func:`_attend`):
    ``nn.MultiheadAttention`` copies q, k and v into a contiguous tensor first, which SDPA does not
    need (3 L N D floats written and read again per block, and as much again in backward)."""
    attn = block.attn
    q, k, v = _heads(attn, block.ln_1(x))
    x = residual(x, _attend(attn, q, k, v, mask))
    return residual(x, run_mlp(block, block.ln_2(x)))


def residual(x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """x + update, written into ``update`` when it has the sum's dtype and shape: ``update`` is a
    product's fresh output that nothing else holds (a frozen product's backward keeps no output), and
    the sums are the same (addition commutes), with one residual-sized tensor fewer allocated per add."""
    if update.dtype == torch.result_type(x, update) and update.shape == x.shape:
        return update.add_(x)
    return x + update


def _heads(attn: nn.MultiheadAttention, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h [L, N, D] -> q, k, v, each [N, heads, L, D / heads], with the block's own in-projection."""
    length, n, width = h.shape
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # [L, N, 3D]
    qkv = qkv.view(length, n, 3, attn.num_heads, width // attn.num_heads)
    q, k, v = qkv.permute(2, 1, 3, 0, 4).unbind(0)
    return q, k, v


def _attend(attn: nn.MultiheadAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Fused scaled-dot-product attention of q [N, H, Lq, hd] over k, v [N, H, Lk, hd], then the
    block's out-projection: [Lq, N, D]. The same maths as ``nn.MultiheadAttention`` (scale hd^-0.5)."""
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.to(q.dtype))  # [N, H, Lq, hd]
    n, heads, length, hd = o.shape
    return F.linear(o.permute(2, 0, 1, 3).reshape(length, n, heads * hd), attn.out_proj.weight, attn.out_proj.bias)


def shared_prefix_part(block: nn.Module, prefix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prefixes' share of :func:`run_shared_prefix_block`: their new hidden states [P, B, D] and
    the keys and values the groups attend to, [B, H, P, hd] each."""
    attn = block.attn
    q, k_p, v_p = _heads(attn, block.ln_1(prefix))  # [B, H, P, hd]
    x = residual(prefix, _attend(attn, q, k_p, v_p, causal_mask(prefix.shape[0], q.dtype, q.device)))
    return residual(x, run_mlp(block, block.ln_2(x))), k_p, v_p


def _per_prompt(t: torch.Tensor, n: int) -> torch.Tensor:
    """t [B, H, P, hd] -> [n, H, P, hd]: prefix b's rows for prompts b * n / B .. (b + 1) * n / B - 1
    (a view of t when B is 1)."""
    b = t.shape[0]
    return t.unsqueeze(1).expand(b, n // b, *t.shape[1:]).reshape(n, *t.shape[1:])


def _group_hidden(block: nn.Module, k_p: torch.Tensor, v_p: torch.Tensor,
                  c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`group_part` up to the MLP's output projection: the residual stream after attention x
    and the MLP's hidden activation; the block's output is x + c_proj(hidden)."""
    attn = block.attn
    q, k, v = _heads(attn, block.ln_1(c))  # [B * Ng, H, Lg, hd]
    n = c.shape[1]
    k = torch.cat([_per_prompt(k_p, n), k], dim=2)
    v = torch.cat([_per_prompt(v_p, n), v], dim=2)
    x = residual(c, _attend(attn, q, k, v, prefix_causal_mask(k_p.shape[2], c.shape[0], q.dtype, q.device)))
    return x, mlp_hidden(block, block.ln_2(x))


def group_part(block: nn.Module, k_p: torch.Tensor, v_p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """One group's share of :func:`run_shared_prefix_block`: c [Lg, B * Ng, D] (prefix-major: row
    b * Ng + j continues prefix b) attending to its prefix's keys and values k_p, v_p [B, H, P, hd],
    then causally to its own positions."""
    x, hidden = _group_hidden(block, k_p, v_p, c)
    return residual(x, block.mlp.c_proj(hidden))


class _RecomputedGroups(torch.autograd.Function):
    """One frozen text block on every class group (:func:`group_part` each), keeping only its inputs:
    each group runs again in backward, on its own, so one group's activations are live at a time.

    What ``torch.utils.checkpoint`` per group would do, with the same values and gradients, but the
    outputs of all groups are written into one tensor per block: a step's long-lived tensors are then
    a few large ones, not one per group and block placed among the groups' short-lived ones, which
    left the CPU heap at 1000 classes about twice the memory in use (0.5-1 GB more resident memory,
    varying from run to run). Backward re-runs a group only up to its MLP's hidden activation: the
    output projection's weight is frozen, so its gradient needs no forward product (as checkpoint's
    early stop skips it). The block's weights must not need a gradient."""

    @staticmethod
    def forward(ctx, block: nn.Module, k_p: torch.Tensor, v_p: torch.Tensor, *groups: torch.Tensor):
        views = _views_like(groups)
        for c, view in zip(groups, views):
            x, hidden = _group_hidden(block, k_p, v_p, c)
            torch.add(x, block.mlp.c_proj(hidden), out=view)
        ctx.block = block
        ctx.autocast = _autocast_state(groups[0].device)
        ctx.save_for_backward(k_p, v_p, *groups)
        return tuple(views)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        k_p, v_p, *groups = ctx.saved_tensors
        wants = ctx.needs_input_grad
        weight = ctx.block.mlp.c_proj.weight
        device_type, enabled, dtype = ctx.autocast
        g_groups: List[Optional[torch.Tensor]] = _views_like(groups) if any(wants[3:]) else [None] * len(groups)
        g_k = g_v = None
        # Last group first, as autograd reaches per-group nodes, so the prefix's gradients are summed
        # in the same order as without recomputation.
        for i in reversed(range(len(groups))):
            with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
                k = k_p.detach().requires_grad_(wants[1])
                v = v_p.detach().requires_grad_(wants[2])
                c = groups[i].detach().requires_grad_(wants[3 + i])
                x, hidden = _group_hidden(ctx.block, k, v, c)
                grad = grads[i]
                # d(x + c_proj(hidden)) / d hidden, as addmm's backward computes it.
                g_hidden = (grad.reshape(-1, grad.shape[-1]) @ weight.to(grad.dtype)).view(hidden.shape)
                # backward, not autograd.grad: hooks that track modules (FlopCounterMode's) support
                # only the former inside a backward.
                torch.autograd.backward((x, hidden), (grad, g_hidden.to(hidden.dtype)),
                                        inputs=[t for t in (k, v, c) if t.requires_grad])
            if wants[1]:
                g_k = k.grad if g_k is None else g_k + k.grad
            if wants[2]:
                g_v = v.grad if g_v is None else g_v + v.grad
            if wants[3 + i]:
                g_groups[i].copy_(c.grad)
            else:
                g_groups[i] = None
        return (None, g_k, g_v, *g_groups)


def _views_like(tensors: Tuple[torch.Tensor, ...]) -> List[torch.Tensor]:
    """Uninitialised tensors shaped as ``tensors``, views of one tensor holding them one after another."""
    flat = tensors[0].new_empty(sum(t.numel() for t in tensors))
    return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def _autocast_state(device: torch.device) -> Tuple[str, bool, torch.dtype]:
    device_type = "cuda" if device.type == "cuda" else "cpu"
    return device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def run_shared_prefix_block(block: nn.Module, prefix: torch.Tensor, *groups: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """One text block on B prefixes and on the positions that follow each of them.

    prefix [P, B, D] holds positions 0..P-1, which under the causal mask attend only to each other,
    so they are computed once each (B = 1: one prefix shared by every class); each group
    [Lg, B * Ng, D] holds positions P.. of Ng prompts per prefix, prefix-major, whose queries attend
    to their prefix's keys and values and causally to their own. Returns the new prefix and groups.
    Equal, up to float rounding, to :func:`run_block` on the concatenations.
    """
    x, k_p, v_p = shared_prefix_part(block, prefix)
    return (x, *(group_part(block, k_p, v_p, c) for c in groups))


def splice_mode(index: int, first: Optional[int], beta: Optional[float]) -> str:
    """How the tokens of block ``index`` enter: inserted at the first insertion block, then
    replacing the previous outputs (MMRL) or, with ``beta``, blended with them (MMRL++)."""
    if index == first:
        return "insert"
    return "replace" if beta is None else "blend"


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
                x = splice_tokens(x, inserts[i], splice_mode(i, first, beta), beta)
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


@dataclass
class ClassGroups:
    """Class prompts prepared for the shared-prefix text tower (:meth:`TextTower.group_classes`).

    Prompts are grouped by length (last token = EOT), so none is padded to a longer one, and the
    prompts of one length split into groups of at most :data:`GROUP_POSITIONS` positions.
    """

    bos: torch.Tensor  # [1, 1, Dt]: position 0 after the lower blocks, the same for every class
    groups: List[torch.Tensor]  # per length l: [l - 1, Ng, Dt], positions 1..l-1 of its prompts
    eots: List[torch.Tensor]  # per group [Ng]: the EOT's index within the group's positions
    order: torch.Tensor  # [N]: row of each asked class in the concatenated group outputs

    @property
    def n_tokens(self) -> int:
        """Text positions the tower runs per block (prefix excluded), summed over classes."""
        return sum(g.shape[0] * g.shape[1] for g in self.groups)


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

    @staticmethod
    def group_classes(lower: torch.Tensor, eot_index: torch.Tensor,
                      classes: Optional[torch.Tensor] = None) -> ClassGroups:
        """Group the classes ``classes`` (indices into the C prompts; all by default) by prompt length.

        lower [L, C, Dt]: the hidden states before the block where the shared part starts (in
        practice the first insertion block J: below it no class-independent token exists besides
        the start token); eot_index [C].
        """
        device = lower.device
        chosen = torch.arange(lower.shape[1], device=device) if classes is None else classes.to(device).long()
        if chosen.dim() != 1 or chosen.numel() == 0:
            raise ValueError("classes must be a non-empty 1-D tensor of class indices")
        lengths = eot_index[chosen] + 1
        groups, eots, rows = [], [], []
        for length in torch.unique(lengths).tolist():
            members = (lengths == length).nonzero().squeeze(1)  # positions in ``chosen``
            for part in members.split(max(1, GROUP_POSITIONS // max(1, length - 1))):
                ids = chosen[part]
                groups.append(lower[1:length, ids])
                eots.append(eot_index[ids] - 1)
                rows.append(part)
        order = torch.argsort(torch.cat(rows))
        return ClassGroups(bos=lower[:1, :1], groups=groups, eots=eots, order=order)

    def run_shared_prefix(
        self,
        classes: ClassGroups,
        start: int,
        inserts: Optional[Mapping[int, torch.Tensor]] = None,
        beta: Optional[float] = None,
        recompute: bool = False,
    ) -> torch.Tensor:
        """Blocks [start, L) on grouped prompts, the shared prefix computed once: features [N, d].

        Position 0 and the K tokens spliced in after it attend only to each other under the causal
        mask, and those tokens are the same for every class, so they form one prefix [1 + K, 1, Dt];
        each class's own positions attend to its keys and values. Same splicing rules as :meth:`run`;
        equal to it, then :meth:`feature` with shift K, up to float rounding.
        """
        if not 0 <= start <= self.n_layers:
            raise ValueError(f"block {start} is outside 0..{self.n_layers}")
        inserts = inserts or {}
        first = min(inserts) if inserts else None
        prefix, groups = classes.bos, list(classes.groups)
        for i in range(start, self.n_layers):
            if i in inserts:
                prefix = splice_tokens(prefix, inserts[i], splice_mode(i, first, beta), beta)
            needs_grad = prefix.requires_grad or any(g.requires_grad for g in groups)
            if recompute and torch.is_grad_enabled() and needs_grad:
                # Each group runs again in backward on its own, so one group's activations are live
                # at a time (the prefix's, a few positions, are kept).
                prefix, k_p, v_p = shared_prefix_part(self.blocks[i], prefix)
                if any(p.requires_grad for p in self.blocks[i].parameters()):
                    groups = [checkpoint(group_part, self.blocks[i], k_p, v_p, c, use_reentrant=False)
                              for c in groups]
                else:
                    groups = list(_RecomputedGroups.apply(self.blocks[i], k_p, v_p, *groups))
            else:
                prefix, *groups = run_shared_prefix_block(self.blocks[i], prefix, *groups)
        rows = torch.cat([g[e, torch.arange(g.shape[1], device=g.device)] for g, e in zip(groups, classes.eots)])
        return self.clip_model.ln_final(rows[classes.order]).type(self.dtype) @ self.clip_model.text_projection

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text features (no tokens), [N, d], computed on all 77 positions as CLIP does."""
        return self.feature(self.run(self.embed(tokens, trim=False), 0, self.n_layers), tokens.argmax(dim=-1))
