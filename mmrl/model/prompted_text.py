"""CLIP's stock text tower on prompt embeddings: learned context vectors in place of prompt tokens.

The text side of the prompt-learning methods of the lineage (CoOp, CoCoOp, MaPLe, IVLP / PromptSRC),
driven from outside CLIP like the rest of ``mmrl.model`` (each stock block through
:func:`mmrl.model.towers.run_block` or the shared-prefix block; nothing of CLIP copied or written).

Interface
---------
``PromptedText(clip_model, prompts, n_ctx, ctx_index=None)``
    ``prompts``: one string per class whose tokens 1..n_ctx (right after the start token) are
    placeholders for the context, e.g. ``"X X X X dog."`` or ``"a photo of a dog."`` (build them with
    :func:`context_prompts`). The frozen part of each prompt is its token embedding plus CLIP's
    positional embedding, kept as buffers, trimmed at the last end-of-text (EOT) token.
    ``ctx_index`` [C, n_ctx] (optional) puts the context at other positions per class (CoOp's class
    token "middle" / "front"); by default it is 1..n_ctx for every class.

``encoder(ctx, deep=None)`` -> text features [C, d]
    ``ctx`` [n_ctx, D]: one context shared by every class (CoOp, MaPLe, PromptSRC), or [C, n_ctx, D]:
    one per class (CoOp's CSC). ``deep`` (optional): per-layer contexts ``[P_1, ..., P_{J-1}]``, each
    [n_ctx, D]; before block i (1-based list index i, block i 0-based) the hidden states at positions
    1..n_ctx are replaced by P_i (MaPLe's and IVLP's text side: the first layer's prompt is ``ctx``).
    The output is CLIP's text feature read at each prompt's EOT: ``ln_final(x[eot]) @ text_projection``,
    not normalised.

``encoder.per_image(ctx, deep=None)`` -> [B, C, d]
    ``ctx`` [B, n_ctx, D]: one context per image, each paired with every class (CoCoOp). All images
    and classes run in one pass, in chunks of at most ``max_tokens`` class positions per block.

Exactness and savings: the result equals the plain forward of the published code (prompts +
positional embedding over all 77 positions, CLIP's ``transformer``, ``ln_final``, the argmax-token
position, ``@ text_projection``) up to float rounding, while
- the tower stops at the last EOT: under the causal mask no position attends to a later one, so the
  padding after it never reaches a feature;
- prompts are grouped by length, so none is padded to the longest;
- a context at positions 1..n_ctx that every class shares makes positions 0..n_ctx the same for every
  class (they attend only to each other): they run once per block as a shared prefix whose keys and
  values the classes' own positions attend to (per image for :meth:`PromptedText.per_image`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.towers import ClassGroups, TextTower, causal_mask, run_block, run_shared_prefix_block

# Class positions per block (summed over images and classes) that one chunk of per_image runs: at
# ViT-B/16's width it bounds a block's activations to ~0.5 GB in fp32.
MAX_TOKENS = 1 << 16
CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def context_init(clip_model: nn.Module, n_ctx: int, ctx_init: str = "", n_cls: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, str]:
    """The initial context vectors and the text that stands for them in the prompts, as the published
    prompt learners draw them.

    From a phrase (``ctx_init``, "_" read as a space): its token embeddings at positions
    1..n_words, n_ctx becoming the number of words. Otherwise N(0, 0.02^2) vectors [n_ctx, D]
    ([n_cls, n_ctx, D] for class-specific contexts), each standing for an "X". fp32 in every precision.
    """
    width = clip_model.ln_final.weight.shape[0]
    if ctx_init:
        phrase = ctx_init.replace("_", " ")
        n_words = len(phrase.split(" "))
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenize([phrase]).to(clip_model.token_embedding.weight.device))
        return embedding[0, 1:1 + n_words].float().clone(), phrase
    shape = (n_ctx, width) if n_cls is None else (n_cls, n_ctx, width)
    vectors = torch.empty(shape)
    nn.init.normal_(vectors, std=0.02, generator=generator)
    return vectors, " ".join(["X"] * n_ctx)


def context_prompts(prompt_prefix: str, classnames: Sequence[str]) -> List[str]:
    """``"<prefix> <class name>."`` per class ("_" in a name read as a space), as the published code."""
    return [f"{prompt_prefix} {name.replace('_', ' ')}." for name in classnames]


def class_token_layout(prompts: Sequence[str], classnames: Sequence[str], n_ctx: int,
                       position: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tokens [C, 77] and context positions [C, n_ctx] for CoOp's class-token position.

    ``prompts`` are laid out with the context first (``"X X X X dog."``, :func:`context_prompts`) for
    ``classnames``. "end" keeps them; "front" moves the name before the context;
    "middle" splits the context in halves around the name (the first half n_ctx // 2). The EOT stays
    where it was.
    """
    if position not in CLASS_TOKEN_POSITIONS:
        raise ValueError(f"class token position must be one of {', '.join(CLASS_TOKEN_POSITIONS)}, got {position!r}")
    tokens = tokenize(list(prompts))
    index = torch.arange(1, 1 + n_ctx).repeat(len(prompts), 1)
    if position == "end":
        return tokens, index
    # A name's length in tokens: its own tokenisation is [SOS, name, EOT].
    name_lens = (tokenize([name.replace("_", " ") for name in classnames]).argmax(dim=-1) - 1).tolist()
    out, ctx_index = tokens.clone(), []
    head = n_ctx // 2 if position == "middle" else 0
    for row, name_len in enumerate(name_lens):
        name = tokens[row, 1 + n_ctx:1 + n_ctx + name_len]
        # [SOS, ctx[:head], name, ctx[head:], rest]; the context slots keep their placeholder tokens.
        order = list(range(1, 1 + head)) + [None] * name_len + list(range(1 + head, 1 + n_ctx))
        slots = [1 + i for i, o in enumerate(order) if o is not None]
        out[row, 1:1 + n_ctx + name_len] = 0
        out[row, torch.tensor(slots)] = tokens[row, 1:1 + n_ctx]
        out[row, 1 + head:1 + head + name_len] = name
        ctx_index.append(slots)
    return out, torch.tensor(ctx_index)


def _replace(x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """Positions 1..n of x [L, N, D] replaced by ``prompt`` [n, D] (every sequence) or [n, N, D]."""
    n = prompt.shape[0]
    t = prompt.to(x.dtype)
    if t.dim() == 2:
        t = t.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.cat([x[:1], t, x[1 + n:]], dim=0)


class PromptedText(nn.Module):
    """CLIP's text tower on class prompts whose context tokens are learned vectors (see the module
    docstring for the interface). Holds CLIP by reference only: no parameter of its own, and its
    buffers (the frozen prompt embeddings) are not saved."""

    def __init__(self, clip_model: nn.Module, prompts: Sequence[str], n_ctx: int,
                 ctx_index: Optional[torch.Tensor] = None, tokens: Optional[torch.Tensor] = None,
                 max_tokens: int = MAX_TOKENS) -> None:
        super().__init__()
        if not prompts:
            raise ValueError("PromptedText needs at least one class prompt")
        self.tower = TextTower(clip_model)
        self.n_ctx = int(n_ctx)
        self.max_tokens = int(max_tokens)
        device = clip_model.text_projection.device
        tokens = (tokenize(list(prompts)) if tokens is None else tokens).to(device)
        eot = tokens.argmax(dim=-1)
        if ctx_index is None:
            ctx_index = torch.arange(1, 1 + n_ctx).repeat(len(prompts), 1)
        ctx_index = ctx_index.to(device).long()
        if not bool((ctx_index.max(dim=1).values < eot).all()):
            raise ValueError("the context positions must come before every prompt's end-of-text token")
        self.shared_layout = bool((ctx_index == torch.arange(1, 1 + n_ctx, device=device)).all())
        length = int(eot.max()) + 1
        dtype = self.tower.dtype
        with torch.no_grad():
            embedded = clip_model.token_embedding(tokens[:, :length]).type(dtype)  # [C, L, D]
            positions = clip_model.positional_embedding.type(dtype)
            frozen = (embedded + positions[:length]).permute(1, 0, 2)  # [L, C, D]
        self.register_buffer("frozen", frozen, persistent=False)
        self.register_buffer("eot_index", eot, persistent=False)
        self.register_buffer("ctx_index", ctx_index, persistent=False)
        self._groups: Dict[str, ClassGroups] = {}

    def _apply(self, fn, *args, **kwargs):
        self._groups = {}
        return super()._apply(fn, *args, **kwargs)

    @property
    def n_classes(self) -> int:
        return self.frozen.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.tower.dtype

    def _context_tokens(self, ctx: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Context vectors [..., n_ctx, D] + the positional embedding of their positions (1..n_ctx, or
        ``index`` [C, n_ctx]), in CLIP's dtype, as the published prompts + positional_embedding."""
        pos = self.tower.clip_model.positional_embedding.type(self.dtype)
        return ctx.type(self.dtype) + (pos[1:1 + self.n_ctx] if index is None else pos[index])

    def _check(self, ctx: torch.Tensor, dims: Tuple[int, ...], deep: Optional[Sequence[torch.Tensor]]) -> None:
        if ctx.dim() not in dims or ctx.shape[-2] != self.n_ctx:
            raise ValueError(f"context of shape {list(ctx.shape)}: expected {self.n_ctx} vectors "
                             f"({' or '.join(f'{d}-D' for d in dims)})")
        if deep and len(deep) >= self.tower.n_layers:
            raise ValueError(f"{len(deep)} deep prompts: at most {self.tower.n_layers - 1} (blocks 1..L-1)")
        if deep and not self.shared_layout:
            raise ValueError("deep prompts replace positions 1..n_ctx: they need the context right after the start token")

    def class_groups(self) -> ClassGroups:
        """The prompts without their context positions, grouped by length: the classes' own part
        after a shared prefix of 1 + n_ctx positions. Cached."""
        groups = self._groups.get("shared")
        if groups is None:
            n = self.n_ctx
            own = torch.cat([self.frozen[:1], self.frozen[1 + n:]])  # start token, then the class's tokens
            groups = self.tower.group_classes(own, self.eot_index - n)
            self._groups["shared"] = groups
        return groups

    def forward(self, ctx: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Text features [C, d] for a context shared by the classes [n_ctx, D] or one per class [C, n_ctx, D]."""
        self._check(ctx, (2, 3), deep)
        if ctx.dim() == 2 and self.shared_layout:
            inserts = {0: self._context_tokens(ctx)}
            inserts.update({i + 1: p for i, p in enumerate(deep or [])})
            return self.tower.run_shared_prefix(self.class_groups(), 0, inserts)
        return self.whole_sequence(ctx, deep)

    def whole_sequence(self, ctx: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """:meth:`forward` without the shared prefix: every class runs its whole prompt (grouped by
        length, trimmed at its EOT). The baseline the saving is tested against; the only path for
        class-specific contexts and the class token in the middle or front."""
        self._check(ctx, (2, 3), deep)
        c = self.n_classes
        t = self._context_tokens(ctx.expand(c, -1, -1) if ctx.dim() == 2 else ctx, self.ctx_index)  # [C, n_ctx, D]
        x = self.frozen.clone()
        x[self.ctx_index.t(), torch.arange(c, device=x.device)] = t.permute(1, 0, 2)
        lengths = self.eot_index + 1
        feats, rows = [], []
        for length in torch.unique(lengths).tolist():
            ids = (lengths == length).nonzero().squeeze(1)
            h = x[:length, ids]
            for i, block in enumerate(self.tower.blocks):
                if deep and 1 <= i <= len(deep):
                    h = _replace(h, deep[i - 1])
                h = run_block(block, h, causal_mask(length, h.dtype, h.device))
            feats.append(h[-1])
            rows.append(ids)
        order = torch.argsort(torch.cat(rows))
        m = self.tower.clip_model
        return m.ln_final(torch.cat(feats)[order]).type(self.dtype) @ m.text_projection

    def per_image(self, ctx: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Text features [B, C, d]: every class prompt with each image's context [B, n_ctx, D]."""
        self._check(ctx, (3,), deep)
        if not self.shared_layout:
            raise ValueError("per-image contexts need the context right after the start token")
        groups = self.class_groups()
        per_image_tokens = max(1, groups.n_tokens)
        step = max(1, self.max_tokens // per_image_tokens)
        return torch.cat([self._per_image(chunk, groups, deep) for chunk in ctx.split(step)])

    def _per_image(self, ctx: torch.Tensor, classes: ClassGroups, deep: Optional[Sequence[torch.Tensor]]) -> torch.Tensor:
        b = ctx.shape[0]
        prefix = torch.cat([classes.bos.expand(1, b, -1), self._context_tokens(ctx).permute(1, 0, 2)])  # [1+n, B, D]
        groups = [g.unsqueeze(1).expand(-1, b, -1, -1).reshape(g.shape[0], b * g.shape[1], g.shape[2])
                  for g in classes.groups]
        for i, block in enumerate(self.tower.blocks):
            if deep and 1 <= i <= len(deep):
                prefix = _replace(prefix, deep[i - 1])
            prefix, *groups = run_shared_prefix_block(block, prefix, *groups)
        rows = []
        for g, e in zip(groups, classes.eots):
            n = e.shape[0]
            picked = g.view(g.shape[0], b, n, -1)[e, :, torch.arange(n, device=g.device)]  # [Ng, B, D]
            rows.append(picked.transpose(0, 1))
        x = torch.cat(rows, dim=1)[:, classes.order]  # [B, C, D]
        m = self.tower.clip_model
        return m.ln_final(x).type(self.dtype) @ m.text_projection
