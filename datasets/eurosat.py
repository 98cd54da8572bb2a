"""EuroSAT (RGB): ``eurosat/2750/<Class>/*.jpg`` and ``eurosat/split_zhou_EuroSAT.json``.
Without the split file, one is drawn 50/20/30 per class from the folders, with the folder
names turned into the readable class names below."""
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_and_split_data

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    display_name = "EuroSAT"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 1, 10
    dataset_dir = "eurosat"
    template = "a centered satellite photo of {}."
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([type(self).image_dir])
        return read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES)
