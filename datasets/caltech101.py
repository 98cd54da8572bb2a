"""Caltech101: ``caltech-101/101_ObjectCategories/<category>/*.jpg`` and
``caltech-101/split_zhou_Caltech101.json``. Without the split file, one is drawn 50/20/30
per class from the folders, skipping the two background-like categories."""
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_and_split_data

IGNORED_CATEGORIES = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {
    "airplanes": "airplane",
    "Faces": "face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
}


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    display_name = "Caltech101"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 7, 2
    dataset_dir = "caltech-101"
    template = "a photo of a {}."
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([type(self).image_dir])
        return read_and_split_data(self.image_dir, ignored=IGNORED_CATEGORIES, new_cnames=NEW_CNAMES)
