"""Oxford-IIIT Pets: ``oxford_pets/images/*.jpg``, ``oxford_pets/annotations/{trainval,test}.txt``
and ``oxford_pets/split_zhou_OxfordPets.json``. Without the split file, trainval is split
80/20 per class into train and val; the test list is the test split."""
import os
from typing import List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_text_lines, split_trainval


def breed_name(image_name: str) -> str:
    """The breed of an image name: the name without its trailing ``_<n>``, lower-cased
    ("American_Bulldog_12" -> "american_bulldog")."""
    return "_".join(image_name.split("_")[:-1]).lower()


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    display_name = "OxfordPets"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 5, 3
    dataset_dir = "oxford_pets"
    template = "a photo of a {}, a type of pet."
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"
    anno_dir = "annotations"

    def read_annotations(self, filename: str) -> List[Datum]:
        path = os.path.join(self.dataset_dir, self.anno_dir, filename)
        items = []
        for lineno, line in read_text_lines(path, "Oxford-IIIT Pets annotation list"):
            if line.startswith("#"):
                continue
            fields = line.split(" ")
            if len(fields) != 4 or not fields[1].isdigit():
                raise ValueError(
                    f"{path}, line {lineno}: {line!r} is not '<image name> <class id> <species> <breed id>'"
                )
            image_name, class_id = fields[0], int(fields[1])
            items.append(
                Datum(
                    impath=os.path.join(self.image_dir, image_name + ".jpg"),
                    label=class_id - 1,
                    classname=breed_name(image_name),
                )
            )
        return items

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([os.path.join(self.anno_dir, f) for f in ("trainval.txt", "test.txt")])
        trainval = self.read_annotations("trainval.txt")
        test = self.read_annotations("test.txt")
        train, val = split_trainval(trainval)
        return train, val, test
