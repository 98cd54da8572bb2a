"""ImageNet-Sketch, test only: ``imagenet-sketch/images/<wnid>/*.JPEG`` plus ImageNet's
classnames.txt; 1000 classes, labels index the sorted wnid folders."""
from mmrl.dassl.data.datasets import DATASET_REGISTRY

from .imagenet import WnidFolderVariant


@DATASET_REGISTRY.register()
class ImageNetSketch(WnidFolderVariant):
    display_name = "ImageNet-Sketch"
    protocols = ("dg",)
    sweep_rank, table_rank = 14, 13
    dataset_dir = "imagenet-sketch"
    image_dir = "images"
