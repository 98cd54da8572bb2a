"""What MaPLe and IVLP / PromptSRC share about their prompts: the first text context and the prompt depth.

Unlike CoOp (whose phrase fixes the number of context tokens), the published MaPLe and PromptSRC
learners keep N_CTX: with CTX_INIT set and N_CTX <= 4 the context is the token embeddings of the
phrase's first N_CTX tokens and the class prompts keep the whole phrase ("a photo of a <name>.", the
context replacing its first N_CTX words); otherwise the context is drawn from N(0, 0.02^2) and the
prompts read "X X ... X <name>.".
"""
from typing import Tuple

import torch
from torch import nn

from mmrl.model.clip_loader import tokenize


def uses_init_phrase(n_ctx: int, ctx_init: str) -> bool:
    return bool(ctx_init) and n_ctx <= 4


def first_context(clip_model: nn.Module, n_ctx: int, ctx_init: str) -> Tuple[torch.Tensor, str]:
    """(context [n_ctx, Dt] in fp32, the prompt prefix). Draws from the global random stream only
    for a random context, as the published learners."""
    if uses_init_phrase(n_ctx, ctx_init):
        phrase = ctx_init.replace("_", " ")
        tokens = tokenize([phrase]).to(clip_model.token_embedding.weight.device)
        n_tokens = int(tokens.argmax(dim=-1)) - 1
        if n_tokens < n_ctx:
            raise ValueError(f"CTX_INIT {ctx_init!r} has {n_tokens} tokens, fewer than N_CTX {n_ctx}")
        with torch.no_grad():
            ctx = clip_model.token_embedding(tokens)[0, 1:1 + n_ctx].float().cpu().clone()
        return ctx, phrase
    ctx = torch.empty(n_ctx, clip_model.ln_final.weight.shape[0])
    nn.init.normal_(ctx, std=0.02)
    return ctx, " ".join(["X"] * n_ctx)


def check_prompt_depth(key: str, depth: int, n_layers: int) -> None:
    """A prompt depth J must lie in 1..n_layers (J - 1 deep prompts after the first)."""
    if not 1 <= int(depth) <= n_layers:
        raise ValueError(f"{key} is {depth}; it must be between 1 (prompts at the input only) and the "
                         f"backbone's {n_layers} blocks")
