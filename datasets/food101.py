"""Food-101: ``food-101/images/<dish>/*.jpg`` and ``food-101/split_zhou_Food101.json``.
Without the split file, one is drawn 50/20/30 per class from the folders."""
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_and_split_data


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    display_name = "Food101"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 8, 6
    dataset_dir = "food-101"
    template = "a photo of {}, a type of food."
    image_dir = "images"
    split_file = "split_zhou_Food101.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([type(self).image_dir])
        return read_and_split_data(self.image_dir)
