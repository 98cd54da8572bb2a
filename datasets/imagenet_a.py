"""ImageNet-A, test only: ``imagenet-adversarial/imagenet-a/<wnid>/*.jpg`` plus ImageNet's
classnames.txt. 200 classes with their own label space: label = index of the wnid among the
200 sorted folders, not the ImageNet index."""
from mmrl.dassl.data.datasets import DATASET_REGISTRY

from .imagenet import WnidFolderVariant


@DATASET_REGISTRY.register()
class ImageNetA(WnidFolderVariant):
    display_name = "ImageNet-A"
    protocols = ("dg",)
    sweep_rank, table_rank = 12, 14
    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
    ignored = ("README.txt",)
