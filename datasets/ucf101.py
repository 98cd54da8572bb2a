"""UCF101 (middle frames): ``ucf101/UCF-101-midframes/<Action_Name>/*.jpg`` and
``ucf101/split_zhou_UCF101.json``. Without the split file, the first official split in
``ucf101/ucfTrainTestlist/`` is read and train is split 80/20 per class into train and val."""
import os
import re
from typing import Dict, List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_text_lines, split_trainval

_CAMEL_WORD = re.compile(r"[A-Z][^A-Z]*")


def split_camel_case(action: str) -> str:
    """"ApplyEyeMakeup" -> "Apply_Eye_Makeup": the folder and class name of an action."""
    return "_".join(_CAMEL_WORD.findall(action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    display_name = "UCF101"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 3, 11
    dataset_dir = "ucf101"
    template = "a photo of a person doing {}."
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    list_dir = "ucfTrainTestlist"

    def read_list(self, cname2lab: Dict[str, int], filename: str) -> List[Datum]:
        path = os.path.join(self.dataset_dir, self.list_dir, filename)
        items = []
        for lineno, line in read_text_lines(path, "UCF101 train/test list"):
            video = line.split(" ")[0]
            action, _, filename_avi = video.partition("/")
            if action not in cname2lab or not filename_avi:
                raise ValueError(
                    f"{path}, line {lineno}: {line!r} is not '<Action>/<video>.avi' with an action of classInd.txt"
                )
            renamed = split_camel_case(action)
            items.append(
                Datum(
                    impath=os.path.join(self.image_dir, renamed, filename_avi.replace(".avi", ".jpg")),
                    label=cname2lab[action],
                    classname=renamed,
                )
            )
        return items

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        self.require_raw_files([os.path.join(self.list_dir, f) for f in ("classInd.txt", "trainlist01.txt", "testlist01.txt")])
        class_file = os.path.join(self.dataset_dir, self.list_dir, "classInd.txt")
        cname2lab = {}
        for lineno, line in read_text_lines(class_file, "UCF101 class index"):
            fields = line.split(" ")
            if len(fields) != 2 or not fields[0].isdigit():
                raise ValueError(f"{class_file}, line {lineno}: {line!r} is not '<id> <Action>'")
            cname2lab[fields[1]] = int(fields[0]) - 1
        trainval = self.read_list(cname2lab, "trainlist01.txt")
        test = self.read_list(cname2lab, "testlist01.txt")
        train, val = split_trainval(trainval)
        return train, val, test
