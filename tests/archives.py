"""Miniature archives of the 15 benchmark datasets in their real archive layouts, a sources file
pointing at them, and a loopback HTTP server for them: the mirror the tests of
``python -m mmrl.data.prepare`` download from.

Each dataset's expected tree is first built with the dataset-tree helpers (tests/dataset_trees.py)
and then packed the way the published archives are packed (tar.gz, tgz, tar, zip, .mat files), so
a prepared data root can be compared file by file with the tree the loaders read.

By hand (no server needed, the sources file points at the folder):

    python -m tests.archives /tmp/mirror            # writes /tmp/mirror/files/ and /tmp/mirror/sources.yaml
    python -m mmrl.data.prepare --root /tmp/data --sources /tmp/mirror/sources.yaml
"""
import http.server
import io
import json
import os
import shutil
import sys
import tarfile
import threading
import time
import zipfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import yaml

from mmrl.data.fetch import file_digest
from tests.dataset_trees import (
    JSON_DATASETS, build_fgvc_aircraft, build_imagenetv2, build_json_dataset, build_wnid_tree, build_wnid_variant,
    imagenet_classnames, tiny_image, write_classnames,
)

WNIDS = ["n01440764", "n01443537"]
# key -> (dataset folder, {archive: [(path in the dataset folder, path in the archive)]}, [plain files])
LAYOUTS: Dict[str, Tuple[str, Dict[str, List[Tuple[str, str]]], List[str]]] = {
    "caltech101": ("caltech-101", {"101_ObjectCategories.tar.gz": [("101_ObjectCategories", "101_ObjectCategories")]},
                   ["split_zhou_Caltech101.json"]),
    "oxford_pets": ("oxford_pets", {"images.tar.gz": [("images", "images")],
                                    "annotations.tar.gz": [("annotations", "annotations")]},
                    ["split_zhou_OxfordPets.json"]),
    "stanford_cars": ("stanford_cars", {"cars_train.tgz": [("cars_train", "cars_train")],
                                        "cars_test.tgz": [("cars_test", "cars_test")],
                                        "car_devkit.tgz": [("devkit", "devkit")]},
                      ["cars_test_annos_withlabels.mat", "split_zhou_StanfordCars.json"]),
    "oxford_flowers": ("oxford_flowers", {"102flowers.tgz": [("jpg", "jpg")]},
                       ["imagelabels.mat", "cat_to_name.json", "split_zhou_OxfordFlowers.json"]),
    "food101": ("food-101", {"food-101.tar.gz": [("images", "food-101/images"), ("meta", "food-101/meta")]},
                ["split_zhou_Food101.json"]),
    "fgvc_aircraft": ("fgvc_aircraft", {"fgvc-aircraft-2013b.tar.gz": [
        ("images", "fgvc-aircraft-2013b/data/images"), ("variants.txt", "fgvc-aircraft-2013b/data/variants.txt")] + [
        (f"images_variant_{s}.txt", f"fgvc-aircraft-2013b/data/images_variant_{s}.txt") for s in ("train", "val", "test")]},
        []),
    "sun397": ("sun397", {"SUN397.tar.gz": [("SUN397", "SUN397")],
                          "Partitions.zip": [(n, n) for n in ("ClassName.txt", "Training_01.txt", "Testing_01.txt")]},
               ["split_zhou_SUN397.json"]),
    "dtd": ("dtd", {"dtd-r1.0.1.tar.gz": [("images", "dtd/images"), ("imdb", "dtd/imdb"), ("labels", "dtd/labels")]},
            ["split_zhou_DescribableTextures.json"]),
    "eurosat": ("eurosat", {"EuroSAT.zip": [("2750", "2750")]}, ["split_zhou_EuroSAT.json"]),
    "ucf101": ("ucf101", {"UCF-101-midframes.zip": [("UCF-101-midframes", "UCF-101-midframes")]},
               ["split_zhou_UCF101.json"]),
    "imagenet": ("imagenet", {}, ["classnames.txt"]),
    "imagenetv2": ("imagenetv2", {"imagenetv2-matched-frequency.tar.gz": [
        ("imagenetv2-matched-frequency-format-val", "imagenetv2-matched-frequency-format-val")]}, ["classnames.txt"]),
    "imagenet_sketch": ("imagenet-sketch", {"ImageNet-Sketch.zip": [("images", "sketch")]}, ["classnames.txt"]),
    "imagenet_a": ("imagenet-adversarial", {"imagenet-a.tar": [("imagenet-a", "imagenet-a")]}, ["classnames.txt"]),
    "imagenet_r": ("imagenet-rendition", {"imagenet-r.tar": [("imagenet-r", "imagenet-r")]}, ["classnames.txt"]),
}
# Members the published archives hold beside what the dataset keeps (they must not end up in it).
EXTRA_MEMBERS = {
    "food-101.tar.gz": {"food-101/README.txt": b"Food-101\n", "food-101/license_agreement.txt": b"licence\n"},
    "fgvc-aircraft-2013b.tar.gz": {"fgvc-aircraft-2013b/README.html": b"<html>FGVC</html>\n"},
}


def _savemat(path: str, data: dict) -> None:
    from scipy.io import savemat

    os.makedirs(os.path.dirname(path), exist_ok=True)
    savemat(path, data)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def build_trees(root: str) -> None:
    """The expected tree of every dataset under ``root`` (what a prepared data root holds)."""
    for name in JSON_DATASETS:
        build_json_dataset(root, name)
    tiny_image(os.path.join(root, "caltech-101", "101_ObjectCategories", "BACKGROUND_Google", "image_0001.jpg"))
    _write(os.path.join(root, "oxford_pets", "annotations", "trainval.txt"), "Abyssinian_1 1 1 1\n")
    _write(os.path.join(root, "oxford_pets", "annotations", "test.txt"), "Abyssinian_100 1 1 1\n")
    cars = os.path.join(root, "stanford_cars")
    _savemat(os.path.join(cars, "devkit", "cars_meta.mat"), {"class_names": np.array([["AM General Hummer SUV 2000"]], dtype=object)})
    _savemat(os.path.join(cars, "devkit", "cars_train_annos.mat"), {"fname": "c1_train_000.jpg", "class": 1})
    _savemat(os.path.join(cars, "cars_test_annos_withlabels.mat"), {"fname": "c1_test_000.jpg", "class": 1})
    flowers = os.path.join(root, "oxford_flowers")
    _savemat(os.path.join(flowers, "imagelabels.mat"), {"labels": np.array([[1, 2, 3, 4, 5]])})
    _write(os.path.join(flowers, "cat_to_name.json"), json.dumps({"1": "pink primrose", "2": "hard-leaved pocket orchid"}))
    _write(os.path.join(root, "food-101", "meta", "classes.txt"), "apple_pie\nbaby_back_ribs\nbaklava\nbeef_carpaccio\n")
    build_fgvc_aircraft(root)
    sun = os.path.join(root, "sun397")
    _write(os.path.join(sun, "ClassName.txt"), "/a/abbey\n/b/balcony/interior\n")
    _write(os.path.join(sun, "Training_01.txt"), "/a/abbey/sun_train0.jpg\n")
    _write(os.path.join(sun, "Testing_01.txt"), "/a/abbey/sun_test0.jpg\n")
    _savemat(os.path.join(root, "dtd", "imdb", "imdb.mat"), {"images": np.array([1, 2, 3])})
    _write(os.path.join(root, "dtd", "labels", "labels_joint_anno.txt"), "banded/banded_train0000.jpg banded\n")
    write_classnames(os.path.join(root, "imagenet"))
    build_imagenetv2(root, {0: 2, 1: 2})
    for variant in ("ImageNetSketch", "ImageNetA", "ImageNetR"):
        build_wnid_variant(root, variant, WNIDS)


def _pack(archive: str, members: List[Tuple[str, str]], extra: Dict[str, bytes]) -> None:
    """Pack (source path, archive path) pairs, folders recursively, in the format the name says."""
    files: List[Tuple[str, str]] = []
    for source, arcname in members:
        if os.path.isdir(source):
            for folder, dirs, names in os.walk(source):
                dirs.sort()
                rel = os.path.relpath(folder, source)
                base = arcname if rel == "." else f"{arcname}/{rel}"
                files.append((folder, base + "/"))
                files += [(os.path.join(folder, n), f"{base}/{n}") for n in sorted(names)]
        else:
            files.append((source, arcname))
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for source, arcname in files:
                zf.write(source, arcname)
            for arcname, data in extra.items():
                zf.writestr(arcname, data)
        return
    mode = "w" if archive.endswith(".tar") else "w:gz"
    with tarfile.open(archive, mode) as tf:
        for source, arcname in files:
            tf.add(source, arcname.rstrip("/"), recursive=False)
        for arcname, data in extra.items():
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def md5(path: str) -> str:
    return file_digest(path, "md5")


def build_mirror(workdir: str, base_url: Optional[str] = None) -> Dict[str, str]:
    """Expected trees in ``workdir/expected``, every archive and plain file in ``workdir/files``,
    an ILSVRC2012-like copy in ``workdir/ilsvrc`` and ``workdir/sources.yaml`` with the mirror
    (``base_url``, default the files folder as a file:// URL) and each archive's md5 and size.
    Returns those paths."""
    expected = os.path.join(workdir, "expected")
    files = os.path.join(workdir, "files")
    os.makedirs(files, exist_ok=True)
    build_trees(expected)
    override: Dict[str, dict] = {}
    for key, (folder, archives, plain) in LAYOUTS.items():
        entries = []
        for name, members in archives.items():
            path = os.path.join(files, name)
            _pack(path, [(os.path.join(expected, folder, src), arc) for src, arc in members], EXTRA_MEMBERS.get(name, {}))
            entries.append({"name": name, "md5": md5(path), "size": os.path.getsize(path)})
        for name in plain:
            path = os.path.join(files, name)
            shutil.copyfile(os.path.join(expected, folder, name), path)
            if name.endswith(".mat"):  # published with a checksum; the split and name files are not
                entries.append({"name": name, "md5": md5(path), "size": os.path.getsize(path)})
        override[key] = {"files": entries} if entries else {}
    ilsvrc = build_ilsvrc(os.path.join(workdir, "ilsvrc"))
    sources = os.path.join(workdir, "sources.yaml")
    with open(sources, "w") as f:
        yaml.safe_dump({"mirror": base_url or "file://" + files, "datasets": {k: v for k, v in override.items() if v}}, f)
    return {"expected": expected, "files": files, "sources": sources, "ilsvrc": ilsvrc}


# The ILSVRC2012 ids of the leaf synsets in the devkit's meta.mat are not in wnid order: the
# second wnid has the smaller id here, so a sort that ignored the devkit would be caught.
ILSVRC_IDS = {WNIDS[0]: 2, WNIDS[1]: 1}
VAL_LABELS = [WNIDS[1], WNIDS[0], WNIDS[0], WNIDS[1]]


def build_ilsvrc(folder: str) -> str:
    """A miniature extracted ILSVRC2012: train/<wnid>/, a flat val/ and the devkit archive."""
    build_wnid_tree(os.path.join(folder, "train"), WNIDS, per_class=3)
    for i, _ in enumerate(VAL_LABELS):
        tiny_image(os.path.join(folder, "val", f"ILSVRC2012_val_{i + 1:08d}.JPEG"), i)
    devkit = os.path.join(folder, "devkit-src", "ILSVRC2012_devkit_t12", "data")
    synsets = np.zeros((len(WNIDS) + 1,), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                                                   ("gloss", "O"), ("num_children", "O")])
    names = dict(imagenet_classnames())
    for i, wnid in enumerate(WNIDS):
        synsets[i] = (ILSVRC_IDS[wnid], wnid, names[wnid], "a fish", 0)
    synsets[-1] = (1001, "n00001740", "entity", "the root", 2)  # an inner synset: not a class
    _savemat(os.path.join(devkit, "meta.mat"), {"synsets": synsets})
    _write(os.path.join(devkit, "ILSVRC2012_validation_ground_truth.txt"),
           "".join(f"{ILSVRC_IDS[w]}\n" for w in VAL_LABELS))
    with tarfile.open(os.path.join(folder, "ILSVRC2012_devkit_t12.tar.gz"), "w:gz") as tf:
        tf.add(os.path.join(folder, "devkit-src", "ILSVRC2012_devkit_t12"), "ILSVRC2012_devkit_t12")
    shutil.rmtree(os.path.join(folder, "devkit-src"))
    return folder


class MirrorServer:
    """A real HTTP server on 127.0.0.1 serving a folder, as the hosts of the datasets do (byte
    ranges for resumes), counting the requests per path. Paths under /missing/ answer 404,
    under /html/ an HTML page, under /slow/ the file at ``slow_rate`` bytes per second, under
    /norange/ the whole file whatever range is asked (as some servers do)."""

    def __init__(self, folder: str, slow_rate: int = 64 * 1024) -> None:
        self.folder = folder
        self.slow_rate = slow_rate
        self.requests: List[Tuple[str, Optional[str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                kind, _, name = self.path.lstrip("/").rpartition("/")
                if kind == "missing":
                    self.send_error(404, "Not Found")
                    return
                if kind == "html":
                    page = b"<!DOCTYPE html><html><body>This file has moved." + b" " * 3000 + b"</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                path = os.path.join(server.folder, name)
                if not os.path.isfile(path):
                    self.send_error(404, "Not Found")
                    return
                with open(path, "rb") as f:
                    data = f.read()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-") and kind != "norange":
                    start = int(rng[len("bytes="):-1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                try:
                    if kind == "slow":
                        step = max(server.slow_rate // 20, 1)
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i:i + step])
                            self.wfile.flush()
                            time.sleep(0.05)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.archives DIR")
    paths = build_mirror(sys.argv[1])
    print(f"mirror files in {paths['files']}; sources file {paths['sources']}; ILSVRC2012-like copy {paths['ilsvrc']}")
