"""SUN397: ``sun397/SUN397/<letter>/<category>[/<sub>]/*.jpg`` and
``sun397/split_zhou_SUN397.json``. Without the split file, the first official partition
(``ClassName.txt``, ``Training_01.txt``, ``Testing_01.txt`` in ``sun397/``) is read and train
is split 80/20 per class into train and val."""
import os
from typing import Dict, List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_text_lines, split_trainval


def readable_name(category: str) -> str:
    """SUN397's category path as a class name: drop the leading letter folder, reverse the rest
    ("b/balcony/interior" -> "interior balcony")."""
    return " ".join(category.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    display_name = "SUN397"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 10, 8
    dataset_dir = "sun397"
    template = "a photo of a {}."
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"

    def read_partition(self, cname2lab: Dict[str, int], filename: str) -> List[Datum]:
        path = os.path.join(self.dataset_dir, filename)
        items = []
        for lineno, line in read_text_lines(path, "SUN397 partition list"):
            relpath = line[1:] if line.startswith("/") else line
            category = os.path.dirname(relpath)
            if category not in cname2lab:
                raise ValueError(
                    f"{path}, line {lineno}: the category {category!r} of {line!r} is not in ClassName.txt"
                )
            items.append(
                Datum(
                    impath=os.path.join(self.image_dir, relpath),
                    label=cname2lab[category],
                    classname=readable_name(category),
                )
            )
        return items

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files(["ClassName.txt", "Training_01.txt", "Testing_01.txt"])
        classname_file = os.path.join(self.dataset_dir, "ClassName.txt")
        categories = [line.lstrip("/") for _, line in read_text_lines(classname_file, "SUN397 class list")]
        cname2lab = {c: i for i, c in enumerate(categories)}
        trainval = self.read_partition(cname2lab, "Training_01.txt")
        test = self.read_partition(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test
