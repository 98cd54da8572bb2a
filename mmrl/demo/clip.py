"""A randomly initialised CLIP with the stock architecture, for the demo and the tests.

Its weights are random: accuracies measured with it say nothing about real CLIP. It exists so
that the whole pipeline (towers, learners, trainers, checkpoints) runs offline and fast. The
builder lives with the loader (``mmrl.model.clip_loader``, which loads the mini backbone by name);
this module is the demo's view of it, with the shapes of ViT-B/16 for benchmarks.
"""
from typing import Dict

from mmrl.model.clip_loader import (  # noqa: F401  (the demo's names)
    MINI_FILE_NAME,
    MINI_SPEC,
    build_mini_clip,
    build_random_clip,
    mini_clip_path,
    write_mini_clip,
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
