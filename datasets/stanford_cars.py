"""Stanford Cars: ``stanford_cars/{cars_train,cars_test}/*.jpg`` and
``stanford_cars/split_zhou_StanfordCars.json`` (paths in the split are relative to the dataset
folder, e.g. "cars_train/00001.jpg"). Without the split file, the devkit's .mat annotations are
read (needs scipy) and train is split 80/20 per class into train and val."""
import os
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import DATASETS_DOC, BenchmarkDataset, split_trainval


def year_first(name: str) -> str:
    """Move the trailing model year to the front: "AM General Hummer SUV 2000" -> "2000 AM General Hummer SUV"."""
    words = name.split(" ")
    return " ".join(words[-1:] + words[:-1])


def load_mat(path: str) -> dict:
    """Read a MATLAB file; only the raw-annotation path of Cars and Flowers needs it."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError(
            f"reading {path} needs scipy (pip install scipy). Alternatively download the split file "
            f"named in {DATASETS_DOC}, which makes the .mat annotations unnecessary."
        ) from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; see {DATASETS_DOC}")
    return loadmat(path)


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    display_name = "StanfordCars"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 9, 4
    dataset_dir = "stanford_cars"
    template = "a photo of a {}."
    image_dir = ""
    split_file = "split_zhou_StanfordCars.json"
    split_prefix = "dataset"

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        folder = cls.folder(cfg)
        return [folder] + [os.path.join(folder, p) for p in ("cars_train", "cars_test", cls.split_file)]

    def read_annotations(self, image_subdir: str, anno_file: str, meta_file: str) -> List[Datum]:
        annotations = load_mat(anno_file)["annotations"][0]
        class_names = load_mat(meta_file)["class_names"][0]
        items = []
        for record in annotations:
            label = int(record["class"][0, 0]) - 1
            items.append(
                Datum(
                    impath=os.path.join(self.dataset_dir, image_subdir, str(record["fname"][0])),
                    label=label,
                    classname=year_first(str(class_names[label][0])),
                )
            )
        return items

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([os.path.join("devkit", "cars_meta.mat"), os.path.join("devkit", "cars_train_annos.mat"),
                                 "cars_test_annos_withlabels.mat"])
        meta = os.path.join(self.dataset_dir, "devkit", "cars_meta.mat")
        trainval = self.read_annotations(
            "cars_train", os.path.join(self.dataset_dir, "devkit", "cars_train_annos.mat"), meta
        )
        test = self.read_annotations(
            "cars_test", os.path.join(self.dataset_dir, "cars_test_annos_withlabels.mat"), meta
        )
        train, val = split_trainval(trainval)
        return train, val, test
