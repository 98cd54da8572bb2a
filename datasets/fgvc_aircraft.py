"""FGVC-Aircraft (variants): the ``data/`` folder of fgvc-aircraft-2013b renamed
``fgvc_aircraft/``: ``images/<id>.jpg``, ``variants.txt`` and
``images_variant_{train,val,test}.txt``. The official split is these text files (no JSON)."""
import os
from typing import Dict, List, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum
from mmrl.data.benchmark import BenchmarkDataset, read_text_lines

SPLIT_FILES = ("images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    display_name = "FGVCAircraft"
    protocols = ("b2n", "xd")
    sweep_rank, table_rank = 6, 7
    dataset_dir = "fgvc_aircraft"
    template = "a photo of a {}, a type of aircraft."
    image_dir = "images"
    split_file = ""

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        folder = cls.folder(cfg)
        files = (cls.image_dir, "variants.txt") + SPLIT_FILES
        return [folder] + [os.path.join(folder, f) for f in files]

    def read_variant_list(self, cname2lab: Dict[str, int], filename: str) -> List[Datum]:
        path = os.path.join(self.dataset_dir, filename)
        items = []
        for lineno, line in read_text_lines(path, "FGVC-Aircraft split list"):
            fields = line.split(" ")
            image_id, variant = fields[0], " ".join(fields[1:])
            if variant not in cname2lab:
                raise ValueError(
                    f"{path}, line {lineno}: variant {variant!r} is not listed in variants.txt "
                    f"(lines must read '<image id> <variant>')"
                )
            items.append(
                Datum(
                    impath=os.path.join(self.image_dir, image_id + ".jpg"),
                    label=cname2lab[variant],
                    classname=variant,
                )
            )
        return items

    def load_data(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        variants = [line for _, line in read_text_lines(os.path.join(self.dataset_dir, "variants.txt"),
                                                           "FGVC-Aircraft variant list")]
        cname2lab = {name: label for label, name in enumerate(variants)}
        train, val, test = (self.read_variant_list(cname2lab, f) for f in SPLIT_FILES)
        return train, val, test
