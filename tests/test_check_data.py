"""`python -m mmrl.data.check`: the per-dataset report and the exit code."""
import os
import shutil
import subprocess
import sys

import pytest

from mmrl.data.check import main
from mmrl.registry import dataset_classes
from tests.dataset_trees import build_fgvc_aircraft, build_imagenet, build_json_dataset, tiny_image

# The datasets of the protocols, as the registry holds them: the 15 of the benchmark.
BENCHMARKS = {cls.__name__ for cls in dataset_classes().values() if cls.protocols}


def report(capsys, *argv):
    code = main(list(argv))
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split("] ", 1)[1].split(":", 1)[0]: line for line in lines if line.startswith("[")}
    return code, lines, by_name


@pytest.fixture
def root(tmp_path):
    build_json_dataset(str(tmp_path), "OxfordPets")
    build_fgvc_aircraft(str(tmp_path), per_split=1)
    build_imagenet(str(tmp_path), ["n01440764", "n01443537"], flat_val=True)
    image_dir = os.path.join(str(tmp_path), "caltech-101", "101_ObjectCategories")
    tiny_image(os.path.join(image_dir, "accordion", "image_0001.jpg"))
    return str(tmp_path)


def test_report_for_every_benchmark(root, capsys):
    code, lines, by_name = report(capsys, "--root", root)
    assert code == 1
    assert lines[0] == f"Data root: {root}"
    assert set(by_name) == BENCHMARKS
    assert by_name["OxfordPets"] == (
        "[present] OxfordPets: train 15 images / 5 classes, val 5 images / 5 classes, test 10 images / 5 classes"
    )
    assert by_name["FGVCAircraft"] == (
        "[present] FGVCAircraft: train 4 images / 4 classes, val 4 images / 4 classes, test 4 images / 4 classes"
    )
    split = os.path.join(root, "caltech-101", "split_zhou_Caltech101.json")
    assert by_name["Caltech101"] == f"[missing] Caltech101: {split} does not exist (see DATASETS.md)"
    assert by_name["Food101"] == f"[missing] Food101: {os.path.join(root, 'food-101')} does not exist (see DATASETS.md)"
    val = os.path.join(root, "imagenet", "images", "val")
    assert by_name["ImageNet"].startswith(f"[broken] ImageNet: {val} holds 4 images directly")
    assert lines[-1] == "2 of 15 datasets present. Download instructions: DATASETS.md"
    # Counting does not draw few-shot subsets.
    assert os.listdir(os.path.join(root, "oxford_pets", "split_fewshot")) == []


def test_exit_code_zero_when_all_asked_for_are_present(root, capsys):
    code, lines, _ = report(capsys, "--root", root, "--dataset", "OxfordPets", "FGVCAircraft")
    assert code == 0
    assert lines[-1] == "2 of 2 datasets present. Download instructions: DATASETS.md"


def test_broken_classnames_and_missing_images(root, capsys):
    shutil.rmtree(os.path.join(root, "imagenet"))
    build_imagenet(root, ["n01440764", "n01443537"])
    with open(os.path.join(root, "imagenet", "classnames.txt"), "w") as f:
        f.write("n01440764 tench\nn01443537\n")
    os.remove(os.path.join(root, "oxford_pets", "images", "Bengal_1.jpg"))
    code, _, by_name = report(capsys, "--root", root, "--dataset", "ImageNet", "OxfordPets")
    assert code == 1
    assert by_name["ImageNet"].startswith("[broken] ImageNet: ")
    assert "classnames.txt, line 2: 'n01443537' is not '<wnid> <class name>'" in by_name["ImageNet"]
    missing = os.path.join(root, "oxford_pets", "images", "Bengal_1.jpg")
    assert by_name["OxfordPets"].startswith(f'[broken] OxfordPets: FileNotFoundError: No file found at "{missing}"')


def test_image_folder_is_checked_when_asked(root, capsys):
    for c in ("ant", "bee"):
        for i in range(5):
            tiny_image(os.path.join(root, "bugs", c, f"{i}.png"))
    code, _, by_name = report(capsys, "--root", root, "--dataset", "ImageFolder", "--folder", "bugs")
    assert code == 0
    assert by_name["ImageFolder"] == (
        "[present] ImageFolder: train 4 images / 2 classes, val 2 images / 2 classes, test 4 images / 2 classes"
    )
    code, _, by_name = report(capsys, "--root", root, "--dataset", "ImageFolder")
    assert code == 1
    assert by_name["ImageFolder"].startswith("[missing] ImageFolder: DATASET.FOLDER.DIR is empty")


def test_unknown_dataset_name(root, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--root", root, "--dataset", "OxfordPet"])
    assert err.value.code == 2
    assert "unknown dataset name(s) OxfordPet; choose from" in capsys.readouterr().err


def test_command_line_entry(root):
    result = subprocess.run(
        [sys.executable, "-m", "mmrl.data.check", "--root", root, "--dataset", "FGVCAircraft"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "[present] FGVCAircraft: train 4 images / 4 classes" in result.stdout


def test_present_configs_lists_the_datasets_on_disk(root, capsys):
    configs = ["configs/datasets/oxford_pets.yaml", "configs/datasets/fgvc_aircraft.yaml",
               "configs/datasets/eurosat.yaml", "configs/datasets/demo.yaml"]
    code = main(["--root", root, "--present-configs", *configs])
    # Pets and Aircraft are in the tree, EuroSAT is not, the demo is generated when first used.
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "configs/datasets/oxford_pets.yaml", "configs/datasets/fgvc_aircraft.yaml", "configs/datasets/demo.yaml"]
