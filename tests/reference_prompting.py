"""The published prompt learners' text side, written out plainly for tests to compare against.

Prompts are built as the published code builds them (the frozen token embeddings of
``"X X X X <name>."`` cut into a start token and a suffix, the learned context concatenated between
them, or the class name moved for CoOp's "middle" / "front"), every sequence keeps all 77 positions,
the positional embedding is added, and CLIP's own ``transformer`` runs them (its stock blocks and their
77-position causal mask); the feature is ``ln_final`` at the argmax token, ``@ text_projection``. Deep
prompts (MaPLe's / IVLP's text side) replace positions 1..n_ctx at the input of blocks 1..J-1, each
stock block then running its own ``forward``.
"""
from typing import List, Optional, Sequence

import torch

from mmrl.model.clip_loader import tokenize


def prompt_embeddings(clip_model, prompts: Sequence[str], n_ctx: int, ctx: torch.Tensor,
                      position: str = "end", name_lens: Optional[List[int]] = None) -> torch.Tensor:
    """[C, 77, D]: start token, context and suffix of each prompt, as the published prompt learner."""
    tokens = tokenize(list(prompts))
    with torch.no_grad():
        embedding = clip_model.token_embedding(tokens)
    prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx:]
    n_cls = tokens.shape[0]
    if ctx.dim() == 2:
        ctx = ctx.unsqueeze(0).expand(n_cls, -1, -1)
    if position == "end":
        return torch.cat([prefix, ctx, suffix], dim=1)
    rows = []
    half = n_ctx // 2
    for i in range(n_cls):
        name, rest = suffix[i:i + 1, :name_lens[i]], suffix[i:i + 1, name_lens[i]:]
        if position == "middle":
            parts = [prefix[i:i + 1], ctx[i:i + 1, :half], name, ctx[i:i + 1, half:], rest]
        else:
            parts = [prefix[i:i + 1], name, ctx[i:i + 1], rest]
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0)


def text_features(clip_model, prompts: torch.Tensor, tokens: torch.Tensor,
                  deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Unnormalised text features [N, d] of prompt embeddings [N, 77, D]."""
    x = (prompts + clip_model.positional_embedding).permute(1, 0, 2)
    if not deep:
        x = clip_model.transformer(x)
    else:
        for i, block in enumerate(clip_model.transformer.resblocks):
            if 1 <= i <= len(deep):
                n = deep[i - 1].shape[0]
                x = torch.cat([x[:1], deep[i - 1].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
            x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ clip_model.text_projection


def image_features(clip_model, images: torch.Tensor) -> torch.Tensor:
    """CLIP's own image encoder, normalised, as the published CustomCLIP."""
    f = clip_model.visual(images)
    return f / f.norm(dim=-1, keepdim=True)


def coop_logits(clip_model, prompts: Sequence[str], ctx: torch.Tensor, images: torch.Tensor,
                position: str = "end", name_lens: Optional[List[int]] = None) -> torch.Tensor:
    """The published CoOp CustomCLIP.forward: [B, C]."""
    n_ctx = ctx.shape[-2]
    text = text_features(clip_model, prompt_embeddings(clip_model, prompts, n_ctx, ctx, position, name_lens),
                         tokenize(list(prompts)))
    text = text / text.norm(dim=-1, keepdim=True)
    return clip_model.logit_scale.exp() * image_features(clip_model, images) @ text.t()


def cocoop_logits(clip_model, prompts: Sequence[str], ctx: torch.Tensor, meta_net, images: torch.Tensor
                  ) -> torch.Tensor:
    """The published CoCoOp CustomCLIP.forward: the meta-net's bias added to the context of each image,
    then the text tower image by image. [B, C]."""
    imf = image_features(clip_model, images)
    ctx_shifted = ctx.unsqueeze(0) + meta_net(imf).unsqueeze(1)
    tokens = tokenize(list(prompts))
    logits = []
    for ctx_i, imf_i in zip(ctx_shifted, imf):
        text = text_features(clip_model, prompt_embeddings(clip_model, prompts, ctx.shape[0], ctx_i), tokens)
        text = text / text.norm(dim=-1, keepdim=True)
        logits.append(clip_model.logit_scale.exp() * imf_i @ text.t())
    return torch.stack(logits)


def published_checkpoint(directory, state_dict, epoch: int, n_cls: int, n_suffix: int, width: int) -> None:
    """A published prompt learner's checkpoint: ``prompt_learner/model.pth.tar-<epoch>`` holding the
    learned tensors plus the frozen token_prefix / token_suffix buffers, in Dassl's layout."""
    import os

    folder = os.path.join(str(directory), "prompt_learner")
    os.makedirs(folder, exist_ok=True)
    sd = {**state_dict, "token_prefix": torch.zeros(n_cls, 1, width), "token_suffix": torch.zeros(n_cls, n_suffix, width)}
    torch.save({"state_dict": sd, "epoch": epoch, "optimizer": None, "scheduler": None},
               os.path.join(folder, f"model.pth.tar-{epoch}"))
