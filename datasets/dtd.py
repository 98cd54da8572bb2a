"""Describable Textures: ``dtd/images/<texture>/*.jpg`` and
``dtd/split_zhou_DescribableTextures.json``. Without the split file, one is drawn 50/20/30
per class from the folders."""
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_and_split_data


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    display_name = "DTD"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 2, 9
    dataset_dir = "dtd"
    template = "{} texture."
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([type(self).image_dir])
        return read_and_split_data(self.image_dir)
