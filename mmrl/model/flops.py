"""FLOPs of one MMRL / MMRL++ training step, counted by ``torch.utils.flop_counter.FlopCounterMode``
and split by part of the step (forward and backward of each).

The counter counts the products of the step (matrix products, the patch convolution, attention);
elementwise work (norms, activations, the optimizer) is free in its model, as in every roofline.
"""
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, Tuple

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

# The parts of a step, in the order they run.
LEARNER, TEXT, IMAGE, ZERO_SHOT, LOSS = "learner", "text side", "image tower", "zero-shot image", "loss"
PARTS = (LEARNER, TEXT, IMAGE, ZERO_SHOT, LOSS)

_aten = torch.ops.aten


def _register_cpu_attention() -> None:
    """Count CPU attention too: torch's counter knows the CUDA fused kernels only, and on CPU
    ``scaled_dot_product_attention`` reaches ``_scaled_dot_product_flash_attention_for_cpu``.
    The formulas are torch's own (those of the CUDA flash kernel)."""
    forward = _aten._scaled_dot_product_flash_attention_for_cpu
    backward = _aten._scaled_dot_product_flash_attention_for_cpu_backward
    if forward in flop_counter.flop_registry or forward.default in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(forward)
    def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    @flop_counter.register_flop_formula(backward)
    def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


_register_cpu_attention()


def counted(fn: Callable[[], Any]) -> Tuple[Any, int]:
    """(fn(), the FLOPs it ran)."""
    with FlopCounterMode(display=False) as mode:
        out = fn()
    return out, mode.get_total_flops()


@dataclass
class StepFlops:
    """FLOPs of one training step per part: forward and backward."""

    forward: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    backward: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))

    @property
    def total(self) -> int:
        return sum(self.forward.values()) + sum(self.backward.values())

    def part(self, name: str) -> int:
        return self.forward[name] + self.backward[name]


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().requires_grad_(t.requires_grad)


def step_flops(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, reg_weight: float,
               autocast: Callable[[], ContextManager[Any]] = nullcontext) -> StepFlops:
    """The FLOPs of ``model.forward_train(images, labels, reg_weight)`` and its backward, by part.

    The step runs as ``forward_train`` does, out of the same pieces, each piece's outputs cut from
    the graph (detached leaves) so that each part's backward runs and is counted on its own; the
    gradients reaching the learner are those of the whole step. (tests/test_flops.py: the parts
    sum to the count of the uncut step.) No optimizer step is taken. ``model`` has no sharding.
    """
    if getattr(model, "sharding", None) is not None:
        raise ValueError("step_flops counts a one-process step; the model has a class sharding")
    flops = StepFlops()

    def forward(part: str, fn: Callable[[], Any]) -> Any:
        with autocast():
            out, n = counted(fn)
        flops.forward[part] += n
        return out

    def backward(part: str, outputs, grads) -> None:
        pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad and g is not None]
        if pairs:
            _, n = counted(lambda: torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs]))
            flops.backward[part] += n

    text_tokens, visual_tokens = forward(LEARNER, model.learner)
    tokens = list(text_tokens) + list(visual_tokens)
    text_in, visual_in = [_leaf(t) for t in text_tokens], [_leaf(t) for t in visual_tokens]
    w = forward(TEXT, lambda: model._text_features(text_in))
    x = forward(IMAGE, lambda: model._image_lower(images))
    f_zs = forward(ZERO_SHOT, lambda: model._zero_shot_image(x))
    f_c, f_r = forward(IMAGE, lambda: model._image_upper(x, visual_in))
    # Everything the learner's parameters feed is a leaf here, so the loss part's backward stops at the features.
    features = [f_c, f_r, w]
    f_c_in, f_r_in, w_in = [_leaf(t) for t in features]
    loss = forward(LOSS, lambda: model._with_loss(f_c_in, f_r_in, f_zs, w_in, labels, reg_weight, 1.0).loss)
    backward(LOSS, [loss], [torch.ones_like(loss)])
    backward(IMAGE, [f_c, f_r], [f_c_in.grad, f_r_in.grad])
    backward(TEXT, [w], [w_in.grad])
    backward(LEARNER, tokens, [t.grad for t in text_in + visual_in])
    return flops
