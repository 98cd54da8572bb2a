"""The registries as the one list of datasets and trainers: what each dataset class declares
(template, display name, protocols), and a dataset added as one .py and one YAML (outside the
repository, through MMRL_DATASETS_PATH) reaching the scripts' protocol lists, the data-root
checker and the result tables with no other edit."""
import os
import subprocess
import sys

import pytest

from mmrl.dassl.data.datasets import DATASET_REGISTRY, DatasetBase
from mmrl.data.benchmark import BenchmarkDataset
from mmrl.registry import PROTOCOLS, dataset_classes, display_name, protocol_datasets, trainer_names

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN = '''
from mmrl.dassl.data.datasets import DATASET_REGISTRY
from mmrl.data.benchmark import BenchmarkDataset


@DATASET_REGISTRY.register()
class TinySet(BenchmarkDataset):
    dataset_dir = "tiny_set"
    image_dir = "images"
    split_file = "split_tiny.json"
    template = "a tiny photo of a {}."
    display_name = "Tiny-Set"
    protocols = ("b2n", "xd")
'''


def test_the_protocols_hold_the_papers_datasets_in_the_sweeps_order():
    assert protocol_datasets("b2n") == [
        "eurosat", "dtd", "ucf101", "oxford_flowers", "oxford_pets", "fgvc_aircraft", "caltech101", "food101",
        "stanford_cars", "sun397", "imagenet"]
    assert protocol_datasets("xd", order="table") == [
        "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft", "sun397", "dtd",
        "eurosat", "ucf101"]
    assert protocol_datasets("dg") == ["imagenet_a", "imagenet_r", "imagenet_sketch", "imagenetv2"]
    assert trainer_names()[:7] == ["ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe", "PromptSRC", "MMRL", "MMRLpp"]


@pytest.mark.parametrize("stem", sorted(dataset_classes()))
def test_every_dataset_declares_its_facts(stem):
    cls = dataset_classes()[stem]
    assert cls.template.count("{}") == 1 and cls.template.format("x") != cls.template
    assert set(getattr(cls, "protocols", ())) <= set(PROTOCOLS)
    assert display_name(stem, cls) == (getattr(cls, "display_name", "") or stem)


def test_a_dataset_without_template_or_with_an_unknown_protocol_is_refused():
    class NoTemplate(DatasetBase):
        pass

    with pytest.raises(TypeError, match="NoTemplate .* declares no prompt template"):
        DATASET_REGISTRY.register(NoTemplate)
    assert "NoTemplate" not in DATASET_REGISTRY
    with pytest.raises(TypeError, match=r"Odd.protocols \('fs',\): give a tuple of b2n, xd, dg"):
        type("Odd", (BenchmarkDataset,), {"protocols": ("fs",)})


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("my_datasets")
    (folder / "tiny_set.py").write_text(PLUGIN)
    (folder / "tiny_set.yaml").write_text('DATASET:\n  NAME: "TinySet"\n')
    env = dict(os.environ, MMRL_DATASETS_PATH=str(folder), PYTHONPATH=os.pathsep.join([REPO, os.environ.get(
        "PYTHONPATH", "")]))
    return env, tmp_path_factory.mktemp("work")


def run(env, *argv, cwd=REPO):
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def test_a_dataset_added_outside_the_repository_is_everywhere(plugin_env):
    env, work = plugin_env
    # The protocol lists of the scripts (scripts/common.sh asks the registry).
    lists = run(env, "bash", "-c", "source scripts/common.sh && load_protocol_datasets && echo \"$B2N_DATASETS\" && echo \"$XD_TARGETS\" && "
                                   "dataset_config tiny_set").stdout.splitlines()
    assert lists[0].split()[-2:] == ["imagenet", "tiny_set"] and lists[1].split()[-1] == "tiny_set"
    assert lists[2] == os.path.join(env["MMRL_DATASETS_PATH"], "tiny_set.yaml")
    # The data-root checker lists it with the benchmark.
    check = run(env, sys.executable, "-m", "mmrl.data.check", "--root", str(work / "data")).stdout
    assert f"[missing] TinySet: {work / 'data' / 'tiny_set'} does not exist" in check
    assert "of 16 datasets present" in check
    # The base-to-novel table has its row, under its display name.
    for tree, acc in (("train_base", "81.0"), ("test_new", "71.0")):
        log = work / "output" / "base2new" / tree / "tiny_set" / "shots_16" / "MMRL" / "vit_b16" / "seed1" / "log.txt"
        log.parent.mkdir(parents=True)
        log.write_text(f"Finish training\n=> result\n* accuracy: {acc}%\n")
    table = run(env, sys.executable, "parse_test_res.py", "--table", "b2n", str(work / "output")).stdout
    row = next(line for line in table.splitlines() if "Tiny-Set" in line)
    assert "81.00" in row and "71.00" in row
