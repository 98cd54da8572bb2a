"""ImageNet's ``images/{train,val}`` built from an existing ILSVRC2012 copy (the licence forbids
downloading it for the user): ``python -m mmrl.data.prepare --root DATA imagenet --from DIR``.

``DIR`` holds ``train/<wnid>/*.JPEG`` and ``val/``, either sorted the same way or flat (the
50,000 ``ILSVRC2012_val_*.JPEG`` of the official archive). A flat ``val/`` is sorted into wnid
folders from the devkit (``ILSVRC2012_devkit_t12.tar.gz`` or its extracted folder, in ``DIR`` or
given with ``--devkit``): ``data/meta.mat`` maps the ILSVRC2012 ids of the 1000 leaf synsets to
wnids, and ``data/ILSVRC2012_validation_ground_truth.txt`` gives one id per validation image,
in the order of their sorted file names (as torchvision's ImageNet reads them).

The images are linked, never copied: symbolic links by default (to the class folders, or to each
image of a flat val/), hard links with ``copy=True`` (every image, on the same file system). The
tree is built under a hidden name and renamed to ``images`` when complete.
"""
import os
import shutil
import tarfile
from typing import Dict, List, Optional

from mmrl.cli import UserError
from mmrl.data.benchmark import DATASETS_DOC

DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def _wnid_folders(folder: str) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _images(folder: str) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))


def find_devkit(source: str, devkit: Optional[str]) -> str:
    for candidate in ([devkit] if devkit else [os.path.join(source, DEVKIT), os.path.join(source, DEVKIT + ".tar.gz")]):
        if candidate and os.path.exists(candidate):
            return candidate
    raise UserError(
        f"ImageNet: {os.path.join(source, 'val')} is flat (one folder of images), and sorting it into wnid "
        f"folders needs the devkit: put {DEVKIT}.tar.gz (from image-net.org) in {source} or pass --devkit PATH"
    )


def _read_devkit(devkit: str) -> Dict[str, bytes]:
    wanted = {"meta.mat": None, GROUND_TRUTH: None}
    if os.path.isdir(devkit):
        for name in wanted:
            path = os.path.join(devkit, "data", name)
            if not os.path.isfile(path):
                raise UserError(f"ImageNet: the devkit {devkit} has no data/{name}")
            with open(path, "rb") as f:
                wanted[name] = f.read()
        return wanted
    try:
        with tarfile.open(devkit) as tf:
            for member in tf.getmembers():
                base = os.path.basename(member.name)
                if base in wanted and member.isfile() and os.path.basename(os.path.dirname(member.name)) == "data":
                    wanted[base] = tf.extractfile(member).read()
    except tarfile.TarError as err:
        raise UserError(f"ImageNet: the devkit {devkit} is not a readable tar archive ({err})") from None
    missing = [n for n, v in wanted.items() if v is None]
    if missing:
        raise UserError(f"ImageNet: the devkit {devkit} has no data/{missing[0]}")
    return wanted


def validation_wnids(devkit: str) -> List[str]:
    """The wnid of each validation image, in the order of the sorted image names."""
    import io

    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError("ImageNet: reading the devkit's meta.mat needs scipy (pip install scipy)") from None
    files = _read_devkit(devkit)
    synsets = loadmat(io.BytesIO(files["meta.mat"]), squeeze_me=True)["synsets"]
    id_to_wnid = {}
    for synset in synsets:
        if int(synset["num_children"]) == 0:
            id_to_wnid[int(synset["ILSVRC2012_ID"])] = str(synset["WNID"])
    wnids = []
    for lineno, line in enumerate(files[GROUND_TRUTH].decode().split(), start=1):
        if int(line) not in id_to_wnid:
            raise UserError(f"ImageNet: {GROUND_TRUTH}, line {lineno}: id {line} is not a leaf synset of meta.mat")
        wnids.append(id_to_wnid[int(line)])
    return wnids


def _link(source: str, target: str, hard: bool) -> None:
    if hard:
        try:
            os.link(source, target)
        except OSError as err:
            raise UserError(
                f"ImageNet: cannot hard-link {source} into {os.path.dirname(target)} ({err.strerror}); hard links "
                f"need the same file system: drop --copy to use symbolic links"
            ) from None
    else:
        os.symlink(source, target)


def _link_tree(source: str, target: str, hard: bool) -> None:
    """``target/<wnid>/`` for every class folder of ``source``: a link to the folder, or with
    ``hard`` a real folder of hard-linked images."""
    os.makedirs(target)
    for wnid in _wnid_folders(source):
        if hard:
            os.makedirs(os.path.join(target, wnid))
            for name in _images(os.path.join(source, wnid)):
                _link(os.path.join(source, wnid, name), os.path.join(target, wnid, name), True)
        else:
            os.symlink(os.path.join(source, wnid), os.path.join(target, wnid))


def build_images(source: str, dataset_dir: str, copy: bool = False, devkit: Optional[str] = None) -> str:
    """Build ``<dataset_dir>/images/{train,val}`` from the ILSVRC2012 copy ``source``; returns
    what was done, in words. An existing ``images`` folder is left as it is."""
    source = os.path.abspath(os.path.expanduser(source))
    images = os.path.join(dataset_dir, "images")
    if os.path.exists(images):
        return f"{images} exists, kept as it is"
    train, val = os.path.join(source, "train"), os.path.join(source, "val")
    for folder in (train, val):
        if not os.path.isdir(folder):
            raise UserError(
                f"ImageNet: --from {source} has no {os.path.basename(folder)}/ folder; it must hold the extracted "
                f"ILSVRC2012 train/ (one folder per wnid) and val/ (see {DATASETS_DOC})"
            )
    if not _wnid_folders(train):
        raise UserError(f"ImageNet: {train} holds no wnid folders (extract the per-class tar files of the train archive)")
    partial = os.path.join(dataset_dir, ".images.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a killed run left
    os.makedirs(partial)
    try:
        how = _build(train, val, partial, source, copy, devkit)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.rename(partial, images)
    kind = "hard links" if copy else "symbolic links"
    return f"images/ built with {kind} to {source} ({how})"


def _build(train: str, val: str, partial: str, source: str, copy: bool, devkit: Optional[str]) -> str:
    _link_tree(train, os.path.join(partial, "train"), copy)
    if _wnid_folders(val):
        _link_tree(val, os.path.join(partial, "val"), copy)
        how = "val/ already sorted by wnid"
    else:
        names = [n for n in _images(val) if n.lower().endswith((".jpeg", ".jpg", ".png"))]
        wnids = validation_wnids(find_devkit(source, devkit))
        if len(wnids) != len(names):
            raise UserError(
                f"ImageNet: {val} holds {len(names)} images but the devkit's ground truth lists {len(wnids)}; "
                f"val/ must hold exactly the ILSVRC2012 validation images"
            )
        for name, wnid in zip(names, wnids):
            folder = os.path.join(partial, "val", wnid)
            os.makedirs(folder, exist_ok=True)
            _link(os.path.join(val, name), os.path.join(folder, name), copy)
        how = f"the flat val/ sorted into {len(set(wnids))} wnid folders from the devkit"
    return how
