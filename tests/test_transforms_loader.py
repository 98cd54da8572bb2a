"""Transforms (order, printed lines, sizes), samplers and data loaders (items, collation, drop_last, bad images)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.data import DatasetWrapper, build_data_loader
from mmrl.dassl.data.datasets import Datum
from mmrl.dassl.data.samplers import build_sampler
from mmrl.dassl.data.transforms import AVAI_CHOICES, build_transform
from mmrl.demo.images import write_image

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def lineage_cfg():
    cfg = get_cfg_default()
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    cfg.INPUT.RRCROP_SCALE = (0.5, 1)
    return cfg


def small_cfg(size=16):
    cfg = lineage_cfg()
    cfg.INPUT.SIZE = (size, size)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.USE_CUDA = False
    cfg.DATASET.NAME = "Tiny"
    return cfg


def make_items(root, n, shape=(20, 30, 3)):
    items = []
    for i in range(n):
        path = os.path.join(str(root), f"im{i}.png")
        write_image(path, np.full(shape, 10 * i, dtype=np.uint8))
        items.append(Datum(impath=path, label=i % 3, classname=f"c{i % 3}"))
    return items


def test_printed_lines_for_the_lineage_setting(capsys):
    cfg = lineage_cfg()
    build_transform(cfg, is_train=True)
    build_transform(cfg, is_train=False)
    norm = f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})"
    assert capsys.readouterr().out.splitlines() == [
        "Building transform_train",
        "+ random resized crop (size=(224, 224), scale=(0.5, 1))",
        "+ random flip",
        "+ to torch tensor of range [0, 1]",
        norm,
        "Building transform_test",
        "+ resize the smaller edge to 224",
        "+ 224x224 center crop",
        "+ to torch tensor of range [0, 1]",
        norm,
    ]


def test_train_and_test_output_shapes():
    cfg = lineage_cfg()
    img = Image.fromarray(np.random.RandomState(0).randint(0, 255, (150, 300, 3), dtype=np.uint8))
    assert build_transform(cfg, is_train=True)(img).shape == (3, 224, 224)
    assert build_transform(cfg, is_train=False)(img).shape == (3, 224, 224)


def test_test_transform_resizes_short_edge_then_center_crops():
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (8, 8)
    cfg.INPUT.INTERPOLATION = "nearest"
    # 40 wide x 20 high: columns 0-9 red, 10-29 green, 30-39 blue. The short edge
    # goes to 8 (-> 16 x 8): red 0-3, green 4-11, blue 12-15; the 8 x 8 centre is all green.
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :10, 0] = 255
    arr[:, 10:30, 1] = 255
    arr[:, 30:, 2] = 255
    out = build_transform(cfg, is_train=False)(Image.fromarray(arr))
    assert out.shape == (3, 8, 8)
    assert torch.equal(out[1], torch.ones(8, 8))
    assert out[0].abs().sum() == 0 and out[2].abs().sum() == 0


def test_resize_when_no_crop_is_chosen(capsys):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (12, 10)
    tfm = build_transform(cfg, is_train=True, choices=["random_flip"])
    assert "+ resize to 12x10" in capsys.readouterr().out
    assert tfm(Image.new("RGB", (33, 17))).shape == (3, 12, 10)


def test_every_valid_transform_runs():
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.GB_K = 3
    img = Image.fromarray(np.random.RandomState(1).randint(0, 255, (40, 50, 3), dtype=np.uint8))
    for choice in AVAI_CHOICES:
        out = build_transform(cfg, is_train=True, choices=[choice])(img)
        assert out.shape == (3, 32, 32), choice
        assert out.dtype == torch.float32, choice
    out = build_transform(cfg, is_train=False, choices=["instance_norm"])(img)
    assert torch.allclose(out.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)


def test_unknown_transform_and_interpolation_are_named():
    cfg = get_cfg_default()
    with pytest.raises(ValueError, match=r"unknown transform 'random_rotate'; valid names are \['random_flip'"):
        build_transform(cfg, is_train=True, choices=["random_rotate"])
    cfg.INPUT.INTERPOLATION = "lanczos"
    with pytest.raises(ValueError, match="INPUT.INTERPOLATION = 'lanczos'"):
        build_transform(cfg, is_train=False)


def test_no_transform(capsys):
    cfg = get_cfg_default()
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg, is_train=True) is None
    assert capsys.readouterr().out == "Note: no transform is applied!\n"


def test_batch_keys_and_dtypes(tmp_path):
    cfg = small_cfg()
    items = make_items(tmp_path, 5)
    loader = build_data_loader(cfg, "SequentialSampler", items, batch_size=4,
                               tfm=build_transform(cfg, is_train=False), is_train=False)
    batch = next(iter(loader))
    assert sorted(batch) == ["domain", "img", "impath", "index", "label"]
    assert batch["img"].shape == (4, 3, 16, 16) and batch["img"].dtype == torch.float32
    for key in ("label", "domain", "index"):
        assert batch[key].dtype == torch.int64
    assert batch["label"].tolist() == [0, 1, 2, 0]
    assert batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["impath"] == [it.impath for it in items[:4]]


def test_drop_last_only_for_training_with_a_full_batch(tmp_path):
    cfg = small_cfg()
    items = make_items(tmp_path, 10)
    tfm = build_transform(cfg, is_train=False)
    assert len(build_data_loader(cfg, "RandomSampler", items, batch_size=4, tfm=tfm, is_train=True)) == 2
    assert len(build_data_loader(cfg, "RandomSampler", items, batch_size=16, tfm=tfm, is_train=True)) == 1
    assert len(build_data_loader(cfg, "SequentialSampler", items, batch_size=4, tfm=tfm, is_train=False)) == 3


def test_empty_loader_names_dataset_and_split():
    cfg = small_cfg()
    with pytest.raises(ValueError, match="Dataset Tiny: the val loader is empty"):
        build_data_loader(cfg, "SequentialSampler", [], batch_size=4, is_train=False, split_name="val")


def test_wrapper_views_img0_and_transform_lists(tmp_path):
    cfg = small_cfg()
    cfg.DATALOADER.K_TRANSFORMS = 2
    cfg.DATALOADER.RETURN_IMG0 = True
    items = make_items(tmp_path, 2)
    tfm = build_transform(cfg, is_train=True)
    out = DatasetWrapper(cfg, items, transform=tfm, is_train=True)[1]
    assert isinstance(out["img"], list) and [v.shape for v in out["img"]] == [(3, 16, 16)] * 2
    assert out["img0"].shape == (3, 16, 16)
    assert (out["label"], out["domain"], out["index"]) == (1, 0, 1)

    # K_TRANSFORMS applies to training only; a list of transforms gives img, img2, ...
    out = DatasetWrapper(cfg, items, transform=[tfm, tfm, tfm], is_train=False)[0]
    assert sorted(k for k in out if k.startswith("img")) == ["img", "img0", "img2", "img3"]
    assert out["img2"].shape == (3, 16, 16)

    with pytest.raises(ValueError, match="Cannot augment the image 2 times"):
        DatasetWrapper(cfg, items, transform=None, is_train=True)
    cfg.DATALOADER.K_TRANSFORMS = 1
    assert isinstance(DatasetWrapper(cfg, items, transform=None)[0]["img"], Image.Image)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_error_names_the_file(tmp_path, workers):
    cfg = small_cfg()
    cfg.DATALOADER.NUM_WORKERS = workers
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    items = [Datum(impath=str(bad), label=0, classname="x")]
    loader = build_data_loader(cfg, "SequentialSampler", items, batch_size=1,
                               tfm=build_transform(cfg, is_train=False), is_train=False)
    # The worker does not raise (its error would reach the main process as a stack dump): the batch
    # names the file, and the trainer stops or skips it (DATALOADER.SKIP_UNREADABLE).
    (batch,) = list(loader)
    assert "img" not in batch
    (message,) = batch["unreadable"]
    assert message.startswith(f'Cannot read image "{bad}"')


def test_samplers(tmp_path):
    items = make_items(tmp_path, 12)  # labels 0,1,2 repeating
    with pytest.raises(ValueError, match="Unknown sampler type: Fancy"):
        build_sampler("Fancy", data_source=items)
    assert list(build_sampler("SequentialSampler", data_source=items)) == list(range(12))
    assert sorted(build_sampler("RandomSampler", data_source=items)) == list(range(12))

    # Dassl's domain and class samplers (domain adaptation, re-identification) are not kept.
    with pytest.raises(ValueError, match=r"Unknown sampler type: RandomDomainSampler \(valid: \['RandomSampler', 'SequentialSampler'\]\)"):
        build_sampler("RandomDomainSampler", data_source=items)
