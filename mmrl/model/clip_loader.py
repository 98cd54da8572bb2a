"""Loading frozen CLIP: the only module of the project that imports the ``clip`` package.

The model returned is the stock ``clip.model.CLIP``; the towers in :mod:`mmrl.model.towers`
drive its blocks from outside and never edit it.
"""
import os
import urllib.error
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch

# clip imports pkg_resources, whose deprecation warning would open every command's output.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import clip
    from clip import clip as _clip_api
    from clip.model import CLIP, VisionTransformer, convert_weights

from mmrl.cache import cache_root
from mmrl.files import atomic_write

MINI_BACKBONE = "mini-random"
CLIP_BACKBONES: List[str] = list(clip.available_models()) + [MINI_BACKBONE]

# Keys every ViT CLIP state dict has; their absence means the file holds something else.
_REQUIRED_KEYS = (
    "visual.conv1.weight",
    "visual.proj",
    "visual.positional_embedding",
    "text_projection",
    "positional_embedding",
    "token_embedding.weight",
    "ln_final.weight",
)
# Metadata entries a TorchScript archive carries next to the weights.
_ARCHIVE_EXTRAS = ("input_resolution", "context_length", "vocab_size")


class CLIPWeightsUnavailable(RuntimeError):
    """The CLIP weights are neither on disk nor downloadable (e.g. offline)."""


# ---- the miniature random CLIP (backbone MINI_BACKBONE) ------------------------------------

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
        model = CLIP(**spec)
    return model.float().eval()


def build_mini_clip(seed: int = 0) -> torch.nn.Module:
    """The miniature random CLIP (:data:`MINI_SPEC`)."""
    return build_random_clip(MINI_SPEC, seed)


def mini_clip_path(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where the loader keeps the miniature CLIP: ``$MMRL_CACHE`` or ``~/.cache/mmrl``."""
    if cache_dir is None:
        cache_dir = cache_root()
    return Path(cache_dir) / MINI_FILE_NAME


def write_mini_clip(path: Union[str, Path], seed: int = 0) -> Path:
    """Write the miniature CLIP's plain state dict to ``path`` atomically (temp file + rename),
    so that concurrent runs never read a half-written file."""
    path = Path(path)
    state_dict = build_mini_clip(seed).state_dict()
    atomic_write(str(path), lambda f: torch.save(state_dict, f))
    return path


def tokenize(texts: List[str]) -> torch.Tensor:
    """CLIP's BPE tokens, LongTensor [N, 77] (BOS ... EOT, zero padded)."""
    if isinstance(texts, str):
        texts = [texts]
    try:
        return _clip_api.tokenize(list(texts)).long()
    except RuntimeError as e:
        raise ValueError(f"cannot tokenize prompt: {e}; shorten the class name or the template") from e


def _weights_file_for(backbone: str, download_root: Optional[str]) -> str:
    """Path of the cached weights of a named backbone, downloading them if absent."""
    url = _clip_api._MODELS[backbone]
    root = download_root or os.path.expanduser("~/.cache/clip")
    file_name = os.path.basename(url)
    target = os.path.join(root, file_name)
    try:
        # clip's own download keeps the cache layout and checks the SHA256; a file already there
        # with the right checksum is used as is.
        return _clip_api._download(url, root)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        # clip only re-downloads a file that fails its SHA256 check, so one that is there is bad.
        found = f" The file at {target} does not match the expected checksum." if os.path.isfile(target) else ""
        raise CLIPWeightsUnavailable(
            f"Cannot obtain CLIP weights for backbone {backbone!r}: download failed ({e}).{found}\n"
            f"Download {url}\n"
            f"and save it as {target} (file name {file_name}),\n"
            f"or pass a local copy with: MODEL.BACKBONE.PATH /path/to/{file_name}"
        ) from e


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Weights from a TorchScript archive, a plain state dict, or a dict with "state_dict"."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP weights file {path} does not exist; check MODEL.BACKBONE.PATH")
    try:
        with warnings.catch_warnings():
            # The official weights are TorchScript archives; torch now warns on every jit.load.
            warnings.simplefilter("ignore", FutureWarning)
            state_dict = torch.jit.load(path, map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            from mmrl.dassl.utils.torchtools import torch_reason

            raise ValueError(
                f"{path} is not CLIP weights: it is neither a TorchScript archive nor a torch state dict "
                f"({torch_reason(e)}); if it was cut short (an interrupted download or copy), delete it and "
                "fetch it again"
            ) from e
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} is not CLIP weights: it holds a {type(state_dict).__name__}, not a state dict")
    missing = [k for k in _REQUIRED_KEYS if k not in state_dict]
    if missing:
        if "visual.layer1.0.conv1.weight" in state_dict:
            raise ValueError(
                f"{path} holds a ResNet CLIP; representation tokens need a ViT backbone (e.g. ViT-B/16)"
            )
        raise ValueError(f"{path} is not CLIP ViT weights: missing key(s) {missing}")
    return {k: v for k, v in state_dict.items() if k not in _ARCHIVE_EXTRAS}


def _spec_from_state_dict(sd: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """The CLIP constructor arguments that a ViT state dict implies (as clip.model.build_model)."""
    vision_width, _, patch, _ = sd["visual.conv1.weight"].shape
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = sd["ln_final.weight"].shape[0]
    return dict(
        embed_dim=sd["text_projection"].shape[1],
        image_resolution=patch * grid,
        vision_layers=len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")}),
        vision_width=vision_width,
        vision_patch_size=patch,
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        transformer_width=text_width,
        transformer_heads=text_width // 64,
        transformer_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}),
    )


def _build_fp32(sd: Dict[str, torch.Tensor], source: str) -> CLIP:
    # Built without storage (meta device) and handed the file's tensors, widened to fp32 where
    # they are fp16: no second copy of the weights is ever allocated, and fp32 weights (our random
    # models) stay bit-identical, unlike clip.model.build_model which halves them.
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = CLIP(**_spec_from_state_dict(sd))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"{source} does not match the CLIP architecture its shapes imply: {e}") from e
    # The text blocks' causal mask is a plain attribute, not a weight: give it the storage the
    # constructor would have (one tensor shared by every block, as CLIP builds it).
    mask = model.build_attention_mask()
    for block in model.transformer.resblocks:
        block.attn_mask = mask
    return model


def load_clip(
    backbone: str,
    path: str = "",
    device: Union[str, torch.device] = "cpu",
    fp16: bool = False,
    download_root: Optional[str] = None,
) -> CLIP:
    """A frozen (requires_grad False), eval-mode CLIP, fp32 unless ``fp16``.

    ``fp16`` halves what CLIP's own ``convert_weights`` halves (linear, convolution and attention
    weights, the projections and embeddings); the layer norms stay fp32. It runs on CPU too.

    ``path`` (a TorchScript archive or a state dict) takes precedence over the name; otherwise a
    name of :data:`CLIP_BACKBONES` is resolved through clip's download cache, and
    :data:`MINI_BACKBONE` through the miniature random CLIP's cache file.
    """
    device = torch.device(device)
    print(f"Loading CLIP (backbone: {backbone})")
    if path:
        file = str(path)
    elif backbone == MINI_BACKBONE:
        file = str(mini_clip_path())
        if not os.path.isfile(file):
            write_mini_clip(file)
    elif backbone in _clip_api._MODELS:
        file = _weights_file_for(backbone, download_root)
    else:
        raise ValueError(f"Unknown CLIP backbone {backbone!r} (MODEL.BACKBONE.NAME); available: {CLIP_BACKBONES}")
    if backbone == MINI_BACKBONE:
        print(
            "WARNING: the CLIP backbone 'mini-random' is RANDOMLY INITIALISED; "
            "its accuracies say nothing about real CLIP"
        )
    try:
        state_dict = _read_state_dict(file)
    except ValueError as err:
        if backbone != MINI_BACKBONE or path:
            raise
        # The miniature CLIP is generated, never downloaded: a damaged cache file is rewritten.
        print(f"The cached {MINI_BACKBONE} weights are damaged ({err}); writing them again")
        write_mini_clip(file)
        state_dict = _read_state_dict(file)
    model = _build_fp32(state_dict, file)
    if not isinstance(model.visual, VisionTransformer):
        raise ValueError(f"{file}: representation tokens need a ViT CLIP backbone")
    if fp16:
        convert_weights(model)
    print(f"CLIP precision: {'fp16' if fp16 else 'fp32'}")
    model.requires_grad_(False)
    return model.to(device).eval()


def check_input_size(clip_model: CLIP, input_size: Sequence[int], backbone: str) -> None:
    """Raise unless ``INPUT.SIZE`` is the resolution the CLIP backbone takes."""
    resolution = clip_model.visual.input_resolution
    if tuple(input_size) != (resolution, resolution):
        raise ValueError(
            f"INPUT.SIZE is {tuple(input_size)} but the CLIP backbone {backbone!r} "
            f"takes {resolution}x{resolution} images: set INPUT.SIZE ({resolution}, {resolution})"
        )


def class_prompts(template: str, classnames: List[str]) -> List[str]:
    """One prompt per class. Underscores become spaces, as in the reference."""
    if "{}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{}}' placeholder for the class name")
    return [template.format(name.replace("_", " ")) for name in classnames]
