"""DataManager and DatasetWrapper: dataset -> transforms -> loaders, as Dassl builds them."""
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Type

import torch
import torchvision.transforms as T
from PIL import Image, UnidentifiedImageError
from tabulate import tabulate
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import default_collate

from ..utils import sample_seed, seeded_generators
from ..utils import distributed as dist
from .datasets import Datum, build_dataset
from .samplers import GlobalBatchSlicer, ShardSampler, build_sampler
from .transforms import INTERPOLATION_MODES, build_transform

__all__ = [
    "DataManager",
    "DatasetWrapper",
    "UnreadableImage",
    "build_data_loader",
    "collate_readable",
    "read_image",
    "set_loader_epoch",
]

# The key under which a batch lists the images its items could not read (see collate_readable).
UNREADABLE_KEY = "unreadable"


class UnreadableImage(OSError):
    """An image file that cannot be decoded (corrupt, empty, truncated, missing)."""


class MissingImage(UnreadableImage, FileNotFoundError):
    """An image file that is not there."""


def read_image(path: str) -> Image.Image:
    """Open an image as RGB; an unreadable file raises an error naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as e:
        raise MissingImage(f'No file found at "{path}"') from e
    # PIL reports undecodable or truncated files as OSError (UnidentifiedImageError
    # is one) or, for some broken headers, SyntaxError/ValueError.
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        size = f", {osp.getsize(path)} bytes" if osp.isfile(path) else ""
        raise UnreadableImage(
            f'Cannot read image "{path}" ({type(e).__name__}: {e}{size}); the file is corrupt or not an image'
        ) from e


def collate_readable(batch: List[Dict[str, Any]]) -> Any:
    """torch's default collation of the readable items; the messages of unreadable ones (items that
    :class:`DatasetWrapper` marked instead of raising inside a worker, where the error would reach
    the main process as a stack dump) under ``batch["unreadable"]``."""
    bad = [item[UNREADABLE_KEY] for item in batch if isinstance(item, dict) and UNREADABLE_KEY in item]
    if not bad:
        return default_collate(batch)
    good = [item for item in batch if UNREADABLE_KEY not in item]
    out = default_collate(good) if good else {}
    out[UNREADABLE_KEY] = bad
    return out


def build_data_loader(
    cfg,
    sampler_type: str = "SequentialSampler",
    data_source: Optional[Sequence[Datum]] = None,
    batch_size: int = 64,
    tfm: Optional[Callable] = None,
    is_train: bool = True,
    dataset_wrapper: Optional[Type[TorchDataset]] = None,
    split_name: str = "",
    seed: Optional[int] = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``data_source``; only training drops the last partial
    batch, and only when there is at least one full batch.

    With ``seed`` (training only), each sample's augmentation is a function of (seed, epoch,
    index); the trainer sets the epoch with :func:`set_loader_epoch`. In a distributed run a
    training loader yields this rank's slice of each global batch of ``batch_size`` and an
    evaluation loader this rank's contiguous shard of the data.
    """
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size)
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    dataset = dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train)
    if is_train and seed is not None:
        dataset.augmentation_seed = seed
    drop_last = is_train and len(data_source) >= batch_size
    loader_args: Dict[str, Any] = {
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "pin_memory": torch.cuda.is_available() and cfg.USE_CUDA,
        "collate_fn": collate_readable,
    }
    if not dist.is_distributed():
        data_loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **loader_args
        )
    elif is_train:
        slicer = GlobalBatchSlicer(sampler, batch_size, drop_last, dist.rank(), dist.world_size())
        data_loader = torch.utils.data.DataLoader(dataset, batch_sampler=slicer, **loader_args)
    else:
        if len(data_source) < dist.world_size():
            raise ValueError(
                f"Dataset {cfg.DATASET.NAME}: the {split_name or 'data'} split has {len(data_source)} items, "
                f"fewer than the {dist.world_size()} ranks that share its evaluation; use fewer processes"
            )
        shard = ShardSampler(len(data_source), dist.rank(), dist.world_size())
        data_loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=shard, **loader_args)
    if len(data_loader) == 0:
        raise ValueError(
            f"Dataset {cfg.DATASET.NAME}: the {split_name or 'data'} loader is empty "
            f"({len(data_source)} items, sampler {sampler_type}, batch size {batch_size}). "
            "Check the split file and DATASET.NUM_SHOTS / SUBSAMPLE_CLASSES."
        )
    return data_loader


def set_loader_epoch(loader: torch.utils.data.DataLoader, epoch: int) -> None:
    """Tell a loader's dataset the epoch it is about to serve (seeded augmentation reads it)."""
    if hasattr(loader.dataset, "epoch"):
        loader.dataset.epoch = epoch


def augmentation_seed_of(cfg) -> Optional[int]:
    """The seed of seeded augmentation, or None when augmentation uses the global generators.

    On with ``DATALOADER.SEEDED_AUGMENTATION`` and in every distributed run (so that N ranks see
    the augmented images one process sees). The run's SEED, or, without one, a seed drawn once by
    rank 0.
    """
    if not (cfg.DATALOADER.SEEDED_AUGMENTATION or dist.is_distributed()):
        return None
    seed = cfg.SEED if cfg.SEED >= 0 else dist.broadcast_object(int.from_bytes(os.urandom(7), "little"))
    why = "" if cfg.DATALOADER.SEEDED_AUGMENTATION else " (on in every distributed run)"
    print(f"Seeded augmentation{why}: each image's augmentation is a function of (seed {seed}, epoch, index)")
    return seed


class DataManager:
    """Builds the dataset (``cfg.DATASET.NAME``), its transforms and loaders.

    Attributes: ``dataset``, ``train_loader_x``, ``train_loader_u`` (None unless
    the dataset has unlabelled data), ``val_loader`` (None when val is empty),
    ``test_loader``, ``num_classes``, ``num_source_domains``, ``lab2cname``.
    """

    def __init__(
        self,
        cfg,
        custom_tfm_train: Optional[Callable] = None,
        custom_tfm_test: Optional[Callable] = None,
        dataset_wrapper: Optional[Type[TorchDataset]] = None,
    ) -> None:
        dataset = build_dataset(cfg)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train

        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        seed = augmentation_seed_of(cfg)
        train_x_cfg = cfg.DATALOADER.TRAIN_X
        train_loader_x = build_data_loader(
            cfg,
            sampler_type=train_x_cfg.SAMPLER,
            data_source=dataset.train_x,
            batch_size=train_x_cfg.BATCH_SIZE,
            tfm=tfm_train,
            is_train=True,
            dataset_wrapper=dataset_wrapper,
            split_name="train_x",
            seed=seed,
        )

        val_loader = None
        if dataset.val:
            val_loader = build_data_loader(
                cfg,
                sampler_type=cfg.DATALOADER.TEST.SAMPLER,
                data_source=dataset.val,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
                tfm=tfm_test,
                is_train=False,
                dataset_wrapper=dataset_wrapper,
                split_name="val",
            )

        test_loader = build_data_loader(
            cfg,
            sampler_type=cfg.DATALOADER.TEST.SAMPLER,
            data_source=dataset.test,
            batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
            tfm=tfm_test,
            is_train=False,
            dataset_wrapper=dataset_wrapper,
            split_name="test",
        )

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname

        self.dataset = dataset
        self.train_loader_x = train_loader_x
        # Dassl's unlabelled loader serves its semi-supervised trainers (TrainerXU), which no
        # trainer of the lineage is: always None.
        self.train_loader_u = None
        self.val_loader = val_loader
        self.test_loader = test_loader

        if cfg.VERBOSE and cfg.DATASET.NAME != "":
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    def show_dataset_summary(self, cfg) -> None:
        table: List[List[Any]] = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.train_u:
            table.append(["# train_u", f"{len(self.dataset.train_u):,}"])
        if self.dataset.val:
            table.append(["# val", f"{len(self.dataset.val):,}"])
        table.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(table))


class DatasetWrapper(TorchDataset):
    """Items are dicts: ``label``, ``domain``, ``impath``, ``index`` and ``img``
    (``img``, ``img2``, ... for a list of transforms; a list of K views when
    ``DATALOADER.K_TRANSFORMS`` > 1 in training; plus ``img0`` with
    ``DATALOADER.RETURN_IMG0``; the PIL image when the transform is None)."""

    def __init__(self, cfg, data_source: Sequence[Datum], transform: Any = None, is_train: bool = False) -> None:
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        # Seeded augmentation (see build_data_loader): None keeps the global generators.
        self.augmentation_seed: Optional[int] = None
        self.epoch = 0

        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"Cannot augment the image {self.k_tfm} times because transform is None")

        to_tensor = [T.Resize(cfg.INPUT.SIZE, interpolation=INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]), T.ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        if self.augmentation_seed is None:
            return self._load(idx)
        with seeded_generators(sample_seed(self.augmentation_seed, self.epoch, idx)):
            return self._load(idx)

    def _load(self, idx: int) -> Dict[str, Any]:
        item = self.data_source[idx]
        output: Dict[str, Any] = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        try:
            img0 = read_image(item.impath)
        except UnreadableImage as e:
            # Reported by the main process (collate_readable), which stops or skips the image.
            return {UNREADABLE_KEY: str(e)}

        if self.transform is None:
            output["img"] = img0
        elif isinstance(self.transform, (list, tuple)):
            for i, tfm in enumerate(self.transform):
                keyname = "img" if i == 0 else f"img{i + 1}"
                output[keyname] = self._transform_image(tfm, img0)
        else:
            output["img"] = self._transform_image(self.transform, img0)

        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm: Callable, img0: Image.Image) -> Any:
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views
