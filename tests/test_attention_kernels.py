"""Both towers' attention, in a training step with the masks we pass, runs PyTorch's fused
scaled-dot-product attention kernels (never the unfused softmax path), forward and backward."""
import collections

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import RepArch

PROMPTS = ["a photo of a dog.", "a cat", "a tiny red car on a road"]  # three lengths: three groups
LAYERS = (6, 7, 8, 9, 10, 11, 12)
# The fused kernels SDPA dispatches to (CPU: flash; CUDA: flash, memory-efficient or cuDNN).
FUSED = {
    "cpu": {"aten::_scaled_dot_product_flash_attention_for_cpu"},
    "cuda": {"aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
             "aten::_scaled_dot_product_cudnn_attention"},
}


def attention_calls(model, images, labels, device, autocast_dtype):
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        with torch.autocast(device, dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
            loss = model.forward_train(images, labels, reg_weight=1.0).loss
        loss.backward()
    return collections.Counter(e.name for e in prof.events())


@pytest.mark.parametrize("device, autocast_dtype", [
    ("cpu", None),
    pytest.param("cuda", None, marks=pytest.mark.gpu),
    pytest.param("cuda", torch.float16, marks=pytest.mark.gpu),
    pytest.param("cuda", torch.bfloat16, marks=pytest.mark.gpu),
])
def test_training_step_reaches_fused_attention_in_both_towers(mini_clip, device, autocast_dtype):
    torch.manual_seed(0)
    clip_model = mini_clip.to(device)
    try:
        arch = RepArch.from_clip(clip_model, "MMRL", 5, LAYERS, 32)
        model = RepresentationCLIP(clip_model, PROMPTS, arch, alpha=0.7).to(device)
        images = torch.randn(2, 3, 32, 32, device=device)
        calls = attention_calls(model, images, torch.tensor([0, 1], device=device), device, autocast_dtype)
    finally:
        mini_clip.to("cpu")
    j = LAYERS[0] - 1
    n_groups = len(model.class_groups().groups)
    assert n_groups == 3
    # Image: blocks below J once, then the zero-shot and the token branch; text: per block from J on,
    # the shared prefix and each length group.
    expected = j + 2 * (12 - j) + (12 - j) * (1 + n_groups)
    assert calls["aten::scaled_dot_product_attention"] == expected
    fused = sum(calls[name] for name in FUSED[device])
    assert fused == expected, {k: v for k, v in calls.items() if "attention" in k}
    assert calls["aten::_scaled_dot_product_attention_math"] == 0
    assert calls["aten::softmax"] == calls["aten::_softmax"] == 0  # the unfused path's softmax
    assert sum(v for k, v in calls.items() if "attention" in k and k.endswith("_backward")) > 0
