"""A randomly initialised CLIP with the stock architecture, for the demo and the tests.

Its weights are random: accuracies measured with it say nothing about real CLIP. It exists so
that the whole pipeline (towers, learners, trainers, checkpoints) runs offline and fast.
"""
import os
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from mmrl.model.clip_loader import clip_model_class

# The shapes of a miniature ViT CLIP. Heads are width // 64, as CLIP derives them from a state
# dict, so a written file reloads into the same architecture.
MINI_SPEC: Dict[str, int] = dict(
    embed_dim=64,
    image_resolution=32,
    vision_layers=12,
    vision_width=128,
    vision_patch_size=8,
    context_length=77,
    vocab_size=49408,
    transformer_width=128,
    transformer_heads=2,
    transformer_layers=12,
)

# ViT-B/16 shapes, for benchmarks that need realistic sizes without the real weights.
VIT_B16_SPEC: Dict[str, int] = dict(
    embed_dim=512,
    image_resolution=224,
    vision_layers=12,
    vision_width=768,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,
    transformer_width=512,
    transformer_heads=8,
    transformer_layers=12,
)

MINI_FILE_NAME = "mini-random-clip.pt"


def build_random_clip(spec: Dict[str, int], seed: int = 0) -> torch.nn.Module:
    """A fp32 ``clip.model.CLIP`` of the given shapes with random weights, in eval mode.

    Deterministic for ``seed`` and leaves the global RNG state untouched.
    """
    missing = [k for k in MINI_SPEC if k not in spec]
    if missing:
        raise ValueError(f"CLIP spec is missing keys {missing}; expected the keys of MINI_SPEC: {list(MINI_SPEC)}")
    if spec["transformer_width"] // 64 != spec["transformer_heads"]:
        # A state dict does not record the head count; CLIP's loader infers width // 64.
        raise ValueError(
            f"transformer_heads={spec['transformer_heads']} must equal transformer_width // 64 "
            f"= {spec['transformer_width'] // 64}, or the weights would not reload into the same model"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clip_model_class()(**spec)
    return model.float().eval()


def build_mini_clip(seed: int = 0) -> torch.nn.Module:
    """The miniature random CLIP (:data:`MINI_SPEC`)."""
    return build_random_clip(MINI_SPEC, seed)


def mini_clip_path(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where the loader keeps the miniature CLIP: ``$MMRL_CACHE`` or ``~/.cache/mmrl``."""
    if cache_dir is None:
        from mmrl.cache import cache_root

        cache_dir = cache_root()
    return Path(cache_dir) / MINI_FILE_NAME


def write_mini_clip(path: Union[str, Path], seed: int = 0) -> Path:
    """Write the miniature CLIP's plain state dict to ``path`` atomically (temp file + rename),
    so that concurrent runs never read a half-written file."""
    from mmrl.dassl.utils import atomic_write

    path = Path(path)
    state_dict = build_mini_clip(seed).state_dict()
    atomic_write(str(path), lambda f: torch.save(state_dict, f))
    return path
