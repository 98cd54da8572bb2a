"""ImageNetV2 (matched-frequency), test only.

Layout: ``imagenetv2/classnames.txt`` (ImageNet's) and
``imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg``. Folder ``i`` holds
the class on line ``i`` of classnames.txt, so the label space is ImageNet's.
"""
import os
from collections import OrderedDict
from typing import List

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.dassl.utils import listdir_nohidden

from mmrl.data.benchmark import DATASETS_DOC

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    display_name = "ImageNetV2"
    protocols = ("dg",)
    sweep_rank, table_rank = 15, 12
    dataset_dir = "imagenetv2"
    image_dir = "imagenetv2-matched-frequency-format-val"

    def read_items(self, classnames: "OrderedDict[str, str]") -> List[Datum]:
        names = list(classnames.values())
        items = []
        for label, classname in enumerate(names):
            folder = os.path.join(self.image_dir, str(label))
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"ImageNetV2: class folder {folder} is missing; {self.image_dir} must hold the "
                    f"{len(names)} folders 0..{len(names) - 1} of the matched-frequency release "
                    f"(see {DATASETS_DOC})"
                )
            for name in listdir_nohidden(folder):
                items.append(Datum(impath=os.path.join(folder, name), label=label, classname=classname))
        return items
