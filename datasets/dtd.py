"""Describable Textures: ``dtd/images/<texture>/*.jpg`` and
``dtd/split_zhou_DescribableTextures.json``. Without the split file, one is drawn 50/20/30
per class from the folders."""
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_and_split_data
from mmrl.data.check import DatasetLayout, require_raw_files


@DATASET_REGISTRY.register()
class DescribableTextures(DatasetLayout, BenchmarkDataset):
    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        require_raw_files(self, [type(self).image_dir])
        return read_and_split_data(self.image_dir)
