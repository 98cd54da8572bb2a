"""ImageNet-R, test only: ``imagenet-rendition/imagenet-r/<wnid>/*.jpg`` plus ImageNet's
classnames.txt. 200 classes with their own label space: label = index of the wnid among the
200 sorted folders, not the ImageNet index."""
from mmrl.dassl.data.datasets import DATASET_REGISTRY

from .imagenet import WnidFolderVariant


@DATASET_REGISTRY.register()
class ImageNetR(WnidFolderVariant):
    display_name = "ImageNet-R"
    protocols = ("dg",)
    sweep_rank, table_rank = 13, 15
    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
    ignored = ("README.txt",)
