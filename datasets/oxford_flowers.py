"""Oxford Flowers 102: ``oxford_flowers/jpg/image_<5 digits>.jpg`` and
``oxford_flowers/split_zhou_OxfordFlowers.json``. Without the split file, ``imagelabels.mat``
(needs scipy) and ``cat_to_name.json`` are read and a 50/20/30 split is drawn per class."""
import os
from collections import defaultdict
from typing import Dict, List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.dassl.utils import read_json
from mmrl.data.benchmark import BenchmarkDataset, draw_split

from .stanford_cars import load_mat


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    display_name = "Flowers102"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 4, 5
    dataset_dir = "oxford_flowers"
    template = "a photo of a {}, a type of flower."
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files(["cat_to_name.json", "imagelabels.mat"])
        names_file = os.path.join(self.dataset_dir, "cat_to_name.json")
        lab2cname: Dict[str, str] = read_json(names_file)
        labels = load_mat(os.path.join(self.dataset_dir, "imagelabels.mat"))["labels"][0]
        by_label = defaultdict(list)
        for index, label in enumerate(labels):
            by_label[int(label)].append(os.path.join(self.image_dir, f"image_{index + 1:05d}.jpg"))

        print("Splitting data into 50% train, 20% val, and 30% test")
        train, val, test = [], [], []
        # Labels in file order and the global random stream, so the draw matches the lineage's.
        for label, impaths in by_label.items():
            parts = draw_split(impaths, (0.5, 0.2))
            if not all(parts):
                raise ValueError(f"OxfordFlowers: class {label} has too few images ({len(impaths)}) to split")
            classname = lab2cname[str(label)]
            for split, paths in zip((train, val, test), parts):
                split.extend(Datum(impath=p, label=label - 1, classname=classname) for p in paths)
        return train, val, test
