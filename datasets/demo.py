"""A synthetic colour-and-shape dataset generated on first use under
``DATASET.ROOT/demo``: the built-in demo needs no download."""
import os.path as osp
from typing import List

from mmrl.dassl.data.datasets import DATASET_REGISTRY
from mmrl.data.benchmark import BenchmarkDataset
from mmrl.demo.images import DEMO_SPLIT_FILE, make_demo_images


@DATASET_REGISTRY.register()
class SyntheticDemo(BenchmarkDataset):
    dataset_dir = "demo"
    template = "a photo of a {}."
    image_dir = "images"
    split_file = DEMO_SPLIT_FILE

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        return []

    def __init__(self, cfg) -> None:
        target = type(self).folder(cfg)
        if not osp.exists(osp.join(target, DEMO_SPLIT_FILE)):
            print(f"Generating the synthetic demo dataset (generated images, not real data) in {target}")
            make_demo_images(target)
        super().__init__(cfg)
