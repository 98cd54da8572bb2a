"""The MMRL / MMRL++ training objective."""
import torch
import torch.nn.functional as F

# Both regularisers use this eps, kept as the reference implementation does.
_COS_EPS = 1e-7


def mmrl_loss(
    logits_c: torch.Tensor,
    logits_r: torch.Tensor,
    f_c: torch.Tensor,
    f_c_zs: torch.Tensor,
    w: torch.Tensor,
    w_zs: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    reg_weight: float,
    batch_share: float = 1.0,
    class_share: float = 1.0,
) -> torch.Tensor:
    """alpha CE(logits_c) + (1 - alpha) CE(logits_r) + reg (1 - mean cos(f_c, f_c_zs)) + reg (1 - mean cos(w, w_zs)).

    logits [B, C]; f_c, f_c_zs [B, d] (image features of the class token, with and without
    representation tokens); w, w_zs [C, d] (text features, learned and zero-shot); labels [B].

    Split over processes, one holding B_r images of a global batch B and the text features of C_r
    of the C classes: the image terms are weighted by ``batch_share`` B_r / B and the text term by
    ``class_share`` C_r / C, so the processes' losses sum to the loss above over the global batch
    and all classes (the means become weighted sums of the per-process means).
    """
    ce = alpha * F.cross_entropy(logits_c, labels) + (1.0 - alpha) * F.cross_entropy(logits_r, labels)
    image_reg = 1.0 - F.cosine_similarity(f_c, f_c_zs.to(f_c.dtype), dim=1, eps=_COS_EPS).mean()
    text_reg = 1.0 - F.cosine_similarity(w, w_zs.to(w.dtype), dim=1, eps=_COS_EPS).mean()
    # With both shares 1 this is bit for bit the sum above (a product by 1.0 is exact).
    return batch_share * (ce + reg_weight * image_reg) + class_share * reg_weight * text_reg
