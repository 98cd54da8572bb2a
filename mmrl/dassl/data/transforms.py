"""Image transforms built from ``cfg.INPUT`` in Dassl's order, with its printed lines."""
import random
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    InterpolationMode,
    Normalize,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)

__all__ = [
    "AVAI_CHOICES",
    "INTERPOLATION_MODES",
    "Cutout",
    "GaussianNoise",
    "InstanceNormalization",
    "Random2DTranslation",
    "build_transform",
]

AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # accepted for compatibility; it adds no step
    # Dassl's AutoAugment policies and RandAugment variants are left out: no trainer of the
    # lineage uses them (its configs train with random_resized_crop, random_flip, normalize).
    "cutout",
    "gaussian_noise",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

_PIL_INTERPOLATION = {
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "nearest": Image.NEAREST,
}


class Random2DTranslation:
    """With probability ``p``, enlarge the image by 1/8 and crop a random
    ``height x width`` window; otherwise resize to ``height x width``.

    Uses the global ``random``, as Dassl does.
    """

    def __init__(self, height: int, width: int, p: float = 0.5, interpolation: int = Image.BILINEAR) -> None:
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.uniform(0, 1) > self.p:
            return img.resize((self.width, self.height), self.interpolation)
        new_width, new_height = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        resized = img.resize((new_width, new_height), self.interpolation)
        x1 = int(round(random.uniform(0, new_width - self.width)))
        y1 = int(round(random.uniform(0, new_height - self.height)))
        return resized.crop((x1, y1, x1 + self.width, y1 + self.height))


class Cutout:
    """Zero ``n_holes`` random ``length x length`` squares (clipped at the border)
    of a [C, H, W] tensor. Centres come from numpy's global generator."""

    def __init__(self, n_holes: int = 1, length: int = 16) -> None:
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.size(1), img.size(2)
        mask = np.ones((h, w), np.float32)
        for _ in range(self.n_holes):
            y = np.random.randint(h)
            x = np.random.randint(w)
            y1, y2 = np.clip(y - self.length // 2, 0, h), np.clip(y + self.length // 2, 0, h)
            x1, x2 = np.clip(x - self.length // 2, 0, w), np.clip(x + self.length // 2, 0, w)
            mask[y1:y2, x1:x2] = 0.0
        return img * torch.from_numpy(mask).expand_as(img)


class GaussianNoise:
    """With probability ``p``, add N(mean, std) noise to a tensor image."""

    def __init__(self, mean: float = 0.0, std: float = 0.15, p: float = 0.5) -> None:
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean


class InstanceNormalization:
    """Normalise each channel of a [C, H, W] tensor to zero mean and unit std."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.size(0)
        flat = img.reshape(c, -1)
        mean = flat.mean(1).view(c, 1, 1)
        std = flat.std(1).view(c, 1, 1)
        return (img - mean) / (std + self.eps)


def _interpolation(cfg) -> InterpolationMode:
    name = cfg.INPUT.INTERPOLATION
    if name not in INTERPOLATION_MODES:
        raise ValueError(
            f"INPUT.INTERPOLATION = {name!r} is not supported; use one of {sorted(INTERPOLATION_MODES)}"
        )
    return INTERPOLATION_MODES[name]


def build_transform(cfg, is_train: bool = True, choices: Optional[Sequence[str]] = None) -> Optional[Compose]:
    """The train or test transform; None when ``INPUT.NO_TRANSFORM`` is set.

    ``choices`` defaults to ``INPUT.TRANSFORMS``.
    """
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        if choice not in AVAI_CHOICES:
            raise ValueError(f"INPUT.TRANSFORMS: unknown transform {choice!r}; valid names are {AVAI_CHOICES}")
    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_transform_train(cfg, choices, target_size, normalize)
    return _build_transform_test(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices: Sequence[str], target_size: str, normalize: Normalize) -> Compose:
    print("Building transform_train")
    tfm = []
    interp_mode = _interpolation(cfg)
    input_size = cfg.INPUT.SIZE

    # Without a crop the output size would follow the input image.
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfm += [Resize(input_size, interpolation=interp_mode)]

    if "random_translation" in choices:
        print("+ random translation")
        tfm += [
            Random2DTranslation(
                input_size[0], input_size[1], interpolation=_PIL_INTERPOLATION[cfg.INPUT.INTERPOLATION]
            )
        ]

    if "random_crop" in choices:
        crop_padding = cfg.INPUT.CROP_PADDING
        print(f"+ random crop (padding = {crop_padding})")
        tfm += [RandomCrop(input_size, padding=crop_padding)]

    if "random_resized_crop" in choices:
        s_ = cfg.INPUT.RRCROP_SCALE
        print(f"+ random resized crop (size={input_size}, scale={s_})")
        tfm += [RandomResizedCrop(input_size, scale=s_, interpolation=interp_mode)]

    if "random_flip" in choices:
        print("+ random flip")
        tfm += [RandomHorizontalFlip()]

    if "colorjitter" in choices:
        b_, c_ = cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C
        s_, h_ = cfg.INPUT.COLORJITTER_S, cfg.INPUT.COLORJITTER_H
        print(f"+ color jitter (brightness={b_}, contrast={c_}, saturation={s_}, hue={h_})")
        tfm += [ColorJitter(brightness=b_, contrast=c_, saturation=s_, hue=h_)]

    if "randomgrayscale" in choices:
        print(f"+ random gray scale (p={cfg.INPUT.RGS_P})")
        tfm += [RandomGrayscale(p=cfg.INPUT.RGS_P)]

    if "gaussian_blur" in choices:
        print(f"+ gaussian blur (kernel={cfg.INPUT.GB_K})")
        tfm += [RandomApply([GaussianBlur(cfg.INPUT.GB_K)], p=cfg.INPUT.GB_P)]

    print("+ to torch tensor of range [0, 1]")
    tfm += [ToTensor()]

    if "cutout" in choices:
        cutout_n, cutout_len = cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN
        print(f"+ cutout (n_holes={cutout_n}, length={cutout_len})")
        tfm += [Cutout(cutout_n, cutout_len)]

    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm += [normalize]

    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={cfg.INPUT.GN_MEAN}, std={cfg.INPUT.GN_STD})")
        tfm += [GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD)]

    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm += [InstanceNormalization()]

    return Compose(tfm)


def _build_transform_test(cfg, choices: Sequence[str], target_size: str, normalize: Normalize) -> Compose:
    print("Building transform_test")
    tfm = []
    interp_mode = _interpolation(cfg)
    input_size = cfg.INPUT.SIZE

    print(f"+ resize the smaller edge to {max(input_size)}")
    tfm += [Resize(max(input_size), interpolation=interp_mode)]

    print(f"+ {target_size} center crop")
    tfm += [CenterCrop(input_size)]

    print("+ to torch tensor of range [0, 1]")
    tfm += [ToTensor()]

    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm += [normalize]

    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm += [InstanceNormalization()]

    return Compose(tfm)
