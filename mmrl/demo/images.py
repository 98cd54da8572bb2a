"""A synthetic image dataset in the lineage's layout, and a small image writer.

Each class is a colour + shape pair (e.g. ``red_circle``) drawn on a noisy
background, with per-image jitter in position, scale, colour and noise, so a
model has to look at the pixels but can learn the classes from few shots.
Generation uses its own seeded generators (never the global ``random``), so
it does not disturb the few-shot draw that follows it.
"""
import os
import os.path as osp
import shutil
from typing import List, Tuple

import numpy as np
from PIL import Image

__all__ = ["DEMO_SPLIT_FILE", "demo_classnames", "make_demo_images", "render_demo_image", "write_image"]

DEMO_SPLIT_FILE = "split_demo.json"

_COLOURS: List[Tuple[str, Tuple[int, int, int]]] = [
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (40, 80, 230)),
    ("yellow", (235, 215, 40)),
    ("purple", (145, 50, 185)),
    ("orange", (245, 140, 30)),
    ("cyan", (40, 205, 215)),
    ("white", (240, 240, 240)),
]
_SHAPES = ["circle", "square", "triangle", "cross", "ring", "diamond", "stripes"]
# 8 colours and 7 shapes are coprime, so class i = (colour i mod 8, shape i mod 7)
# gives 56 distinct pairs in which neighbouring classes differ in both.
MAX_DEMO_CLASSES = len(_COLOURS) * len(_SHAPES)


def write_image(path: str, array: np.ndarray) -> None:
    """Write a uint8 image array (H x W, or H x W x 1/3/4) to ``path``.

    The format follows the file extension (.png, .jpg/.jpeg, .bmp, ...);
    parent folders are created.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_image({path!r}): expected a uint8 array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"write_image({path!r}): expected H x W or H x W x 3/4, got shape {arr.shape}")
    img = Image.fromarray(arr)
    ext = osp.splitext(path)[1].lower()
    parent = osp.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if ext in (".jpg", ".jpeg"):
        if img.mode == "RGBA":
            img = img.convert("RGB")
        img.save(path, quality=95)
    else:
        img.save(path)


def demo_classnames(n_classes: int) -> List[str]:
    """Readable class names ``<colour>_<shape>`` for class indices 0..n_classes-1."""
    if not 1 <= n_classes <= MAX_DEMO_CLASSES:
        raise ValueError(f"n_classes must be between 1 and {MAX_DEMO_CLASSES}, got {n_classes}")
    return [f"{_COLOURS[i % len(_COLOURS)][0]}_{_SHAPES[i % len(_SHAPES)]}" for i in range(n_classes)]


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # dx, dy: [H, W] offsets from the shape's centre in units of its radius
    adx, ady = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= 1.0
    if shape == "square":
        return np.maximum(adx, ady) <= 0.8
    if shape == "triangle":
        # apex up at dy = -0.9, base at dy = 0.8 with half-width 0.95
        return (dy <= 0.8) & (adx <= (dy + 0.9) / 1.7 * 0.95)
    if shape == "cross":
        return ((adx <= 0.3) & (ady <= 0.95)) | ((ady <= 0.3) & (adx <= 0.95))
    if shape == "ring":
        r2 = dx ** 2 + dy ** 2
        return (r2 <= 1.0) & (r2 >= 0.55 ** 2)
    if shape == "diamond":
        return adx + ady <= 1.0
    if shape == "stripes":
        return (np.maximum(adx, ady) <= 0.9) & (np.floor((dy + 1.0) * 2.5).astype(np.int64) % 2 == 0)
    raise ValueError(f"unknown demo shape {shape!r}")


def render_demo_image(class_index: int, image_index: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """The [size, size, 3] uint8 image ``image_index`` of class ``class_index``."""
    rng = np.random.default_rng([seed, class_index, image_index])
    colour = np.array(_COLOURS[class_index % len(_COLOURS)][1], dtype=np.float64)
    shape = _SHAPES[class_index % len(_SHAPES)]

    # The shape covers much of the image so that its colour dominates even for a
    # randomly initialised network; the jitter keeps the images distinct.
    background = rng.uniform(30, 55)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1, size=2) * size
    radius = rng.uniform(0.3, 0.4) * size
    colour = np.clip(colour + rng.uniform(-15, 15, size=3), 0, 255)

    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    mask = _shape_mask(shape, (xx - cx) / radius, (yy - cy) / radius)
    img = np.full((size, size, 3), background)
    img[mask] = colour
    img += rng.normal(0.0, 5.0, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _split_sizes(per_class: int) -> Tuple[int, int, int]:
    n_train = round(per_class * 0.5)
    n_val = round(per_class * 0.2)
    n_test = per_class - n_train - n_val
    if min(n_train, n_val, n_test) <= 0:
        raise ValueError(
            f"per_class={per_class} is too small for a 50/20/30 split (got {n_train}/{n_val}/{n_test}); use >= 5"
        )
    return n_train, n_val, n_test


def make_demo_images(
    dataset_dir: str, n_classes: int = 10, per_class: int = 24, size: int = 48, seed: int = 0
) -> None:
    """Write ``<dataset_dir>/images/<classname>/<classname>_<i>.png`` and ``split_demo.json``.

    Per class the first 50% of the images go to train, the next 20% to val and
    the rest to test. The split file is written last and marks a complete
    dataset: when it exists nothing is done; otherwise images are generated in
    a temporary folder and renamed into place, so an interrupted generation is
    simply redone.
    """
    # imported here: mmrl.data needs the engine's Datum, the pure drawing code above does not
    from mmrl.dassl.data.datasets import Datum
    from mmrl.data.benchmark import save_split

    classnames = demo_classnames(n_classes)
    n_train, n_val, _ = _split_sizes(per_class)
    split_path = osp.join(dataset_dir, DEMO_SPLIT_FILE)
    if osp.exists(split_path):
        return

    image_dir = osp.join(dataset_dir, "images")
    partial_dir = osp.join(dataset_dir, f".images.partial-{os.getpid()}")
    shutil.rmtree(partial_dir, ignore_errors=True)
    for c, classname in enumerate(classnames):
        for i in range(per_class):
            array = render_demo_image(c, i, size=size, seed=seed)
            write_image(osp.join(partial_dir, classname, f"{classname}_{i}.png"), array)
    if osp.exists(split_path):  # another process finished meanwhile
        shutil.rmtree(partial_dir, ignore_errors=True)
        return
    shutil.rmtree(image_dir, ignore_errors=True)
    os.rename(partial_dir, image_dir)

    train, val, test = [], [], []
    for label, classname in enumerate(classnames):
        for i in range(per_class):
            item = Datum(
                impath=osp.join(image_dir, classname, f"{classname}_{i}.png"), label=label, classname=classname
            )
            (train if i < n_train else val if i < n_train + n_val else test).append(item)
    save_split(train, val, test, split_path, image_dir)
