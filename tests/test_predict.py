"""Using a trained model: ``python -m mmrl.predict`` and ``mmrl.load(...).predict`` on the demo."""
import json
import os
import shutil

from pathlib import Path

import pytest
import torch
from PIL import Image

import datasets  # noqa: F401  (registers the datasets)
import mmrl
import trainers  # noqa: F401  (registers the trainers)
from mmrl import predict
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.utils import load_checkpoint
from test_reference_checkpoint import reference_mmrl_dict
from tests.train_runs import mount_tmpfs, remount_read_only, unmount

FOLDER = "MultiModalRepresentationLearner"


@pytest.fixture(scope="module")
def evaluation(demo_run):
    """The trainer's own evaluation of the run on the demo's test split: (image paths, predicted labels)."""
    root, run = demo_run
    argv = ["--root", str(root), "--seed", "1", "--trainer", "MMRL", "--dataset-config-file",
            "configs/datasets/demo.yaml", "--config-file", "configs/trainers/MMRL/demo.yaml",
            "--output-dir", str(run.parent / "eval"), "--eval-only", "DATASET.NUM_SHOTS", "4",
            "DATASET.SUBSAMPLE_CLASSES", "base", "TASK", "B2N"]
    trainer = build_trainer(setup_cfg(build_parser().parse_args(argv)))
    trainer.load_model(str(run))
    trainer.test()
    paths = [item.impath for item in trainer.dm.dataset.test]
    return paths, list(trainer.evaluator._y_pred), list(trainer.dm.dataset.classnames)


@pytest.fixture(scope="module")
def model(demo_run):
    return mmrl.load(str(demo_run[1]))


def run_cli(capsys, *argv):
    rc = predict.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_top1_equals_the_trainers_evaluation_image_by_image(evaluation, model):
    paths, labels, classnames = evaluation
    assert model.classnames == classnames and model.template == "a photo of a {}."
    assert model.scored == "fused"  # the classes it was trained on
    got = model.predict(paths, topk=1, batch_size=16)
    assert [p.path for p in got] == paths
    assert [classnames.index(p.label) for p in got] == labels
    top = model.predict(paths[:3], topk=len(classnames))
    for p in top:
        assert sorted(p.classes) == sorted(classnames)
        assert p.probabilities == sorted(p.probabilities, reverse=True)
        assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)


def test_cli_folder_recursive_formats_and_output_file(demo_run, evaluation, capsys, tmp_path):
    root, run = demo_run
    paths, labels, classnames = evaluation
    folder = tmp_path / "mine"
    for i, path in enumerate(paths[:6]):  # nested folders, as a user's images are
        (folder / str(i % 2) / "deeper").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / str(i % 2) / ("deeper" if i % 3 else "") / f"{i}.png")
    rc, out, err = run_cli(capsys, "--model-dir", run, "--topk", 2, "--format", "json", "--output",
                           tmp_path / "p.json", folder)
    assert rc == 0 and out == ""
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["logits"] == "fused" and "trained on" in data["rule"]
    found = {os.path.basename(p["path"]): p["top"][0]["class"] for p in data["predictions"]}
    assert found == {f"{i}.png": classnames[labels[i]] for i in range(6)}
    assert all(len(p["top"]) == 2 for p in data["predictions"])
    assert "Scoring the fused logits" in err
    rc, out, _ = run_cli(capsys, "--model-dir", run, "--format", "csv", "--topk", 3, *paths[:2])
    lines = out.splitlines()
    assert rc == 0 and lines[0] == "path,rank,class,probability,logits" and len(lines) == 1 + 2 * 3
    assert lines[1].startswith(f"{paths[0]},1,{classnames[labels[0]]},") and lines[1].endswith(",fused")
    rc, out, _ = run_cli(capsys, "--model-dir", run, "--topk", 1, paths[0])
    assert rc == 0 and out.startswith("Scored: the fused logits") and f"{classnames[labels[0]]} (" in out


def test_new_class_names_switch_to_the_class_token_rule(demo_run, evaluation, model, capsys, tmp_path):
    paths, _, classnames = evaluation
    new = tmp_path / "new.txt"
    new.write_text("\n".join(classnames + ["black hexagon"]) + "\n")
    rc, out, err = run_cli(capsys, "--model-dir", demo_run[1], "--format", "json", "--classnames", new, *paths)
    data = json.loads(out)
    assert rc == 0 and data["logits"] == "class" and data["classes"] == len(classnames) + 1
    assert "decoupled inference" in data["rule"] and "Scoring the class logits" in err
    # The class-token logits of the same model, by the API, with the rule forced.
    forced = mmrl.load(str(demo_run[1]), classnames=classnames + ["black hexagon"], logits="class")
    assert [p["top"][0]["class"] for p in data["predictions"]] == [p.label for p in forced.predict(paths, topk=1)]
    # The trained names in another order are still the trained classes: fused.
    same = tmp_path / "same.txt"
    same.write_text("\n".join(reversed(classnames)))
    rc, out, _ = run_cli(capsys, "--model-dir", demo_run[1], "--format", "json", "--classnames", same, paths[0])
    assert json.loads(out)["logits"] == "fused"
    assert json.loads(out)["predictions"][0]["top"][0]["class"] == model.predict(paths[:1])[0].label


def test_unreadable_images_are_named_and_skipped(demo_run, evaluation, capsys, tmp_path):
    paths, _, _ = evaluation
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(paths[0], folder / "a.png")
    shutil.copy(paths[1], folder / "sub" / "b.png")
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "sub" / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not looked at: not an image extension")
    rc, out, err = run_cli(capsys, "--model-dir", demo_run[1], "--format", "json", folder, tmp_path / "nope.png")
    assert rc == 1
    data = json.loads(out)
    assert [p["path"] for p in data["predictions"]] == [str(folder / "a.png"), str(folder / "sub" / "b.png")]
    assert sorted(s["path"] for s in data["skipped"]) == [str(folder / "broken.png"), str(folder / "sub" / "empty.jpg")]
    for name in ("broken.png", "empty.jpg"):
        assert f"Skipped unreadable image: Cannot read image \"{folder}" in err and name in err
    assert f"{tmp_path / 'nope.png'} does not exist" in err and "3 of 5 paths could not be predicted" in err
    with pytest.raises(OSError, match="broken.png"):
        mmrl.load(str(demo_run[1])).predict([str(folder / "broken.png")])


def test_reference_checkpoint_needs_class_names_and_template(demo_run, evaluation, model, capsys, tmp_path):
    paths, labels, classnames = evaluation
    ours = load_checkpoint(str(demo_run[1] / FOLDER / "model.pth.tar-1"))
    ref_dir = tmp_path / "reference"
    (ref_dir / FOLDER).mkdir(parents=True)
    torch.save({"state_dict": reference_mmrl_dict(model.model.learner), "epoch": 1},
               ref_dir / FOLDER / "model.pth.tar-1")
    (ref_dir / FOLDER / "checkpoint").write_text("model.pth.tar-1\n")
    cfg_args = ("--config-file", "configs/trainers/MMRL/demo.yaml")
    rc, out, err = run_cli(capsys, "--model-dir", ref_dir, *cfg_args, paths[0])
    assert rc == 2 and out == "" and "Traceback" not in err
    assert "reference-implementation checkpoint" in err and "--classnames FILE" in err and "--template" in err

    names = tmp_path / "names.txt"
    names.write_text("\n".join(classnames))
    argv = ("--model-dir", ref_dir, *cfg_args, "--classnames", names, "--template", "a photo of a {}.", "--format", "json")
    rc, out, _ = run_cli(capsys, *argv, "--logits", "fused", *paths)
    data = json.loads(out)
    assert rc == 0 and data["logits"] == "fused"
    assert [p["top"][0]["class"] for p in data["predictions"]] == [classnames[label] for label in labels]
    # It records no training classes, so by default the class-token rule applies, and says why.
    rc, out, _ = run_cli(capsys, *argv, paths[0])
    assert json.loads(out)["logits"] == "class" and "does not record the classes" in json.loads(out)["rule"]
    assert ours["epoch"] == 1


def test_folder_without_checkpoint_or_class_names_is_a_clear_error(demo_run, capsys, tmp_path):
    image = next(p for p in (demo_run[0] / "demo" / "images").rglob("*.png"))
    rc, _, err = run_cli(capsys, "--model-dir", tmp_path, image)
    assert rc == 2 and f'Model not found at "{tmp_path / FOLDER}"' in err and "--model-dir" in err
    old = tmp_path / "old"
    (old / FOLDER).mkdir(parents=True)
    checkpoint = load_checkpoint(str(demo_run[1] / FOLDER / "model.pth.tar-1"))
    for key in ("classnames", "template"):
        del checkpoint[key]
    torch.save(checkpoint, old / FOLDER / "model.pth.tar-1")
    (old / FOLDER / "checkpoint").write_text("model.pth.tar-1\n")
    rc, _, err = run_cli(capsys, "--model-dir", old, image)
    assert rc == 2 and "records neither class names nor prompt template: pass --classnames FILE" in err


def test_output_is_checked_before_predicting(demo_run, evaluation, capsys, tmp_path, monkeypatch):
    paths, _, _ = evaluation
    # A missing folder is created; the predictions land there.
    rc, out, err = run_cli(capsys, "--model-dir", demo_run[1], "--output", tmp_path / "new" / "deep" / "p.csv",
                           "--format", "csv", paths[0])
    assert rc == 0 and out == "" and (tmp_path / "new" / "deep" / "p.csv").read_text().startswith("path,rank,")
    # Outputs that cannot be written fail before the model is even loaded (no "Scoring" line).
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    for output, says in ((tmp_path, "is a folder: give a file name"),
                         (blocker / "p.csv", f"{blocker} is a file, not a folder")):
        rc, out, err = run_cli(capsys, "--model-dir", demo_run[1], "--output", output, paths[0])
        assert rc == 2 and out == "" and "Scoring" not in err and "Traceback" not in err
        assert err.splitlines()[-2].startswith(f"Error: --output {output}") and says in err.splitlines()[-2]
    assert blocker.read_text() == "kept"
    mount = tmp_path / "ro"
    if not mount_tmpfs(mount, "size=1m"):
        pytest.skip("cannot mount a read-only file system here (needs root)")
    try:
        assert remount_read_only(mount)
        for output in (mount / "p.json", mount / "missing" / "p.json"):
            rc, out, err = run_cli(capsys, "--model-dir", demo_run[1], "--output", output, paths[0])
            assert rc == 2 and "Scoring" not in err and "Read-only file system" in err and f"--output {output}" in err
        monkeypatch.setenv("MMRL_DEBUG", "1")
        rc, _, err = run_cli(capsys, "--model-dir", demo_run[1], "--output", mount / "p.json", paths[0])
        assert rc == 2 and "Traceback" in err
    finally:
        unmount(mount)


def test_api_takes_one_path_or_image_as_one_item(model, evaluation):
    paths, labels, classnames = evaluation
    one = model.predict(paths[0])
    assert len(one) == 1 and one[0].path == paths[0] and one[0].label == classnames[labels[0]]
    for same in (Path(paths[0]), Image.open(paths[0]), [paths[0]]):
        assert [(p.label, p.probabilities) for p in model.predict(same)] == [(one[0].label, one[0].probabilities)]
    for bad, says in ((3, "not int"), (b"a.png", "not bytes"), (None, "not NoneType"),
                      ([paths[0], 4], "item 1 (4) is of type int")):
        with pytest.raises(TypeError, match="takes an image path|each item must be an image path") as err:
            model.predict(bad)
        assert says in str(err.value)
    with pytest.raises(TypeError, match="topk must be an int"):
        model.predict(paths[0], topk="3")
    with pytest.raises(TypeError, match="classnames must be a list of class names, not str"):
        mmrl.load("unused", classnames="cat")
