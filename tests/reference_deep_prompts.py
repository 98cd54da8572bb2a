"""The published MaPLe / PromptSRC forward passes, written out plainly for tests to compare against.

As the published CLIP variants compute them: every text sequence keeps all 77 positions and runs
through each stock block's own forward (with CLIP's own 77 x 77 causal mask); the context vectors
replace positions 1..n of the embedded prompt before the positional embedding is added, and the deep
text prompts replace positions 1..n at the input of blocks 1..J-1; the first vision prompts are
appended after the patch tokens before ``ln_pre`` and the deep ones replace the last n positions at
the input of blocks 1..J-1; features are read at the EOT (text) and the class token (image).
Tensors come in the published checkpoints' key names.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmrl.model.templates import IMAGENET_TEMPLATES


def text_features(clip_model, tokenized: torch.Tensor, ctx: torch.Tensor, deep: Sequence[torch.Tensor]) -> torch.Tensor:
    """[C, d], not normalised."""
    n, c = ctx.shape[0], tokenized.shape[0]
    embedding = clip_model.token_embedding(tokenized)
    x = torch.cat([embedding[:, :1], ctx.unsqueeze(0).expand(c, -1, -1), embedding[:, 1 + n:]], dim=1)
    x = (x + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if 1 <= i <= len(deep):
            x = torch.cat([x[:1], deep[i - 1].unsqueeze(1).expand(-1, c, -1), x[1 + n:]], dim=0)
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(c), tokenized.argmax(dim=-1)] @ clip_model.text_projection


def image_features(visual, images: torch.Tensor, first: torch.Tensor, deep: Sequence[torch.Tensor]) -> torch.Tensor:
    """[B, d], not normalised."""
    n, b = first.shape[0], images.shape[0]
    x = visual.conv1(images.type(visual.conv1.weight.dtype))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(b, 1, x.shape[-1], dtype=x.dtype)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    x = torch.cat([x, first.unsqueeze(0).expand(b, -1, -1)], dim=1)
    x = visual.ln_pre(x).permute(1, 0, 2)
    for i, block in enumerate(visual.transformer.resblocks):
        if 1 <= i <= len(deep):
            x = torch.cat([x[:-n], deep[i - 1].unsqueeze(1).expand(-1, b, -1)], dim=0)
        x = block(x)
    return visual.ln_post(x.permute(1, 0, 2)[:, 0]) @ visual.proj


def maple_prompts(sd: Dict[str, torch.Tensor], depth: int) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """(text prompts, vision prompts) of a MaPLe state dict: the vision ones through the coupling maps."""
    p = "prompt_learner."
    text = [sd[p + "ctx"]] + [sd[f"{p}compound_prompts_text.{j}"] for j in range(depth - 1)]
    vision = [F.linear(sd[p + "ctx"], sd[p + "proj.weight"], sd[p + "proj.bias"])]
    vision += [F.linear(text[j + 1], sd[f"{p}compound_prompt_projections.{j}.weight"],
                        sd[f"{p}compound_prompt_projections.{j}.bias"]) for j in range(depth - 1)]
    return text, vision


def promptsrc_prompts(sd: Dict[str, torch.Tensor], depth_text: int, depth_vision: int
                      ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    text = [sd["prompt_learner.ctx"]] + [sd[f"text_encoder.transformer.resblocks.{j}.VPT_shallow"]
                                         for j in range(1, depth_text)]
    vision = [sd["image_encoder.VPT"]] + [sd[f"image_encoder.transformer.resblocks.{j}.VPT_shallow"]
                                          for j in range(1, depth_vision)]
    return text, vision


def logits(clip_model, tokenized, images, text: Sequence[torch.Tensor], vision: Sequence[torch.Tensor]):
    """(logits, normalised image features, normalised text features) of the prompted model."""
    w = F.normalize(text_features(clip_model, tokenized, text[0], text[1:]), dim=-1)
    f = F.normalize(image_features(clip_model.visual, images, vision[0], vision[1:]), dim=-1)
    return clip_model.logit_scale.exp() * f @ w.t(), f, w


def published_learner(trainable: torch.nn.Module, lr: float) -> Tuple[Dict[str, torch.Tensor], torch.optim.Optimizer]:
    """The published learner's tensors, a copy of ``trainable``'s under the same state-dict keys, and
    their optimizer: SGD at ``lr`` with Dassl's defaults (momentum 0.9, weight decay 5e-4)."""
    theirs = {k: v.clone().requires_grad_(True) for k, v in trainable.state_dict().items()}
    return theirs, torch.optim.SGD(list(theirs.values()), lr=lr, momentum=0.9, weight_decay=5e-4)


def promptsrc_teacher_text(clip_model, classnames: Sequence[str], tokenize,
                           templates: Sequence[str] = IMAGENET_TEMPLATES) -> torch.Tensor:
    """The published frozen text features: each template's encode_text, averaged, then normalised."""
    names = [n.replace("_", " ") for n in classnames]
    per_template = [clip_model.encode_text(tokenize([t.replace("{}", n) for n in names])) for t in templates]
    return F.normalize(torch.stack(per_template, dim=1).mean(dim=1), dim=-1)


def promptsrc_loss(clip_model, tokenized, images, labels, text, vision, teacher_text, text_weight, image_weight):
    """The published training loss: CE + KL(zero-shot || prompted) / (B C) + weighted L1 terms."""
    z, f, w = logits(clip_model, tokenized, images, text, vision)
    with torch.no_grad():
        f_zs = F.normalize(clip_model.encode_image(images), dim=-1)
        z_zs = clip_model.logit_scale.exp() * f_zs @ teacher_text.t()
    ce = F.cross_entropy(z, labels)
    l_text = F.l1_loss(w, teacher_text, reduction="mean") * text_weight
    l_image = F.l1_loss(f, f_zs, reduction="mean") * image_weight
    kl = F.kl_div(F.log_softmax(z, dim=1), F.log_softmax(z_zs, dim=1), reduction="sum", log_target=True) / z.numel()
    return ce + (kl + l_text + l_image), z
