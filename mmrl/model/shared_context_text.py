"""Class prompts whose context tokens are learned and shared by every class, on CLIP's stock text tower.

The prompt of a class is "<prefix> <name>." (MaPLe, IVLP / PromptSRC). Positions 1..n hold learned
context vectors: at the input (block 0) they replace the token embeddings of the prompt's first n
words and get the positional embeddings of positions 1..n; at the input of blocks 1..J-1 they are
replaced by that block's deep prompts (no positional embedding), as in the published code.

Computed exactly, with less work: under the causal mask the start token and the n context positions
attend only to each other and are the same for every class, so they run once per call as a shared
prefix (:meth:`TextTower.run_shared_prefix`); each class runs only its own positions, grouped by
length, and the tower stops at the class's end-of-text token. The features equal those of the full
77-position sequences up to float rounding (tests/test_maple.py, tests/test_promptsrc.py).
"""
from dataclasses import replace
from typing import List, Optional, Sequence

import torch
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.towers import ClassGroups, TextTower


def class_prompt_texts(prefix: str, classnames: Sequence[str]) -> List[str]:
    """The published prompts: "<prefix> <name>." with underscores of the names as spaces."""
    return [f"{prefix} {name.replace('_', ' ')}." for name in classnames]


def context_prefix(n_ctx: int, ctx_init: str) -> str:
    """The words the context replaces: the initialisation phrase when one is used (the published
    code uses it when set and n_ctx <= 4), otherwise n placeholder words "X"."""
    return ctx_init.replace("_", " ") if uses_init_phrase(n_ctx, ctx_init) else " ".join(["X"] * n_ctx)


def uses_init_phrase(n_ctx: int, ctx_init: str) -> bool:
    return bool(ctx_init) and n_ctx <= 4


def phrase_context(clip_model: nn.Module, n_ctx: int, ctx_init: str) -> torch.Tensor:
    """The token embeddings [n, Dt] of the phrase's first n tokens (after the start token), fp32."""
    tokens = tokenize([ctx_init.replace("_", " ")]).to(clip_model.token_embedding.weight.device)
    with torch.no_grad():
        embedding = clip_model.token_embedding(tokens)[0, 1:1 + n_ctx].float()
    if embedding.shape[0] < n_ctx:
        raise ValueError(f"CTX_INIT {ctx_init!r} has fewer than N_CTX {n_ctx} tokens")
    return embedding.cpu().clone()


class SharedContextText(nn.Module):
    """The class prompts of one class list, ready for the text tower; holds CLIP by reference."""

    def __init__(self, clip_model: nn.Module, prefix: str, classnames: Sequence[str], n_ctx: int) -> None:
        super().__init__()
        if not classnames:
            raise ValueError("the class prompts need at least one class name")
        self.tower = TextTower(clip_model)
        self.n_ctx = int(n_ctx)
        device = clip_model.text_projection.device
        tokens = tokenize(class_prompt_texts(prefix, classnames)).to(device)
        with torch.no_grad():
            lower = self.tower.embed(tokens)  # [L, C, Dt]: token + positional embeddings, trimmed
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("eot_index", tokens.argmax(dim=-1), persistent=False)
        self.register_buffer("embedded", lower, persistent=False)
        pos = clip_model.positional_embedding[1:1 + self.n_ctx].detach()
        self.register_buffer("context_positions", pos.clone(), persistent=False)  # [n, Dt]
        self._groups: Optional[ClassGroups] = None

    def _apply(self, fn, *args, **kwargs):
        self._groups = None
        return super()._apply(fn, *args, **kwargs)

    @property
    def n_classes(self) -> int:
        return self.tokens.shape[0]

    def class_groups(self) -> ClassGroups:
        """Each class's own positions (n + 1 .. its EOT) grouped by length; position 0 as the prefix."""
        if self._groups is None:
            n = self.n_ctx
            groups = TextTower.group_classes(self.embedded[n:], self.eot_index - n)
            self._groups = replace(groups, bos=self.embedded[:1, :1])
        return self._groups

    def inserts(self, ctx: torch.Tensor, deep: Sequence[torch.Tensor]) -> dict:
        """Block index -> the tokens at positions 1..n entering it."""
        if ctx.shape[0] != self.n_ctx:
            raise ValueError(f"{ctx.shape[0]} context vectors for prompts built with {self.n_ctx}")
        inserts = {0: ctx + self.context_positions.to(ctx.dtype)}
        for i, p in enumerate(deep, start=1):
            inserts[i] = p
        return inserts

    def features(self, ctx: torch.Tensor, deep: Sequence[torch.Tensor] = (), recompute: bool = False) -> torch.Tensor:
        """Text features [C, d] (not normalised): context ``ctx`` [n, Dt] at the input, ``deep[j - 1]``
        [n, Dt] replacing positions 1..n at the input of block j."""
        if len(deep) >= self.tower.n_layers:
            raise ValueError(f"{len(deep) + 1} prompt layers for a text tower of {self.tower.n_layers} blocks")
        return self.tower.run_shared_prefix(self.class_groups(), 0, self.inserts(ctx, deep), None, recompute)

    def whole_sequence_features(self, ctx: torch.Tensor, deep: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """:meth:`features` on the whole padded sequences, without the shared prefix and the length
        groups: the baseline the saving is measured against (benchmarks)."""
        n = self.n_ctx
        x = torch.cat([self.embedded[:1], self.embedded[1 + n:]], dim=0)  # the context is inserted at block 0
        x = self.tower.run(x, 0, self.tower.n_layers, self.inserts(ctx, deep))
        return self.tower.feature(x, self.eot_index)
