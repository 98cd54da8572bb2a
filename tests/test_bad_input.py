"""Bad input ends a run with one line naming the thing and the fix, never a traceback, and loses
no finished work: damaged checkpoints and pointers, unwritable output folders, read-only dataset
folders, a full disk while saving, unreadable images (with loader workers), YAML syntax errors."""
import json
import os
import resource
import shutil
import signal

import pytest

import datasets  # noqa: F401  (registers the datasets)
from mmrl.cli import DEBUG_HINT
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.data.datasets import build_dataset, load_pickle
from mmrl.dassl.engine.preflight import check_output_dir
from mmrl.dassl.utils import load_checkpoint, read_pointer
from mmrl.dassl.utils.torchtools import load_resumable
from mmrl.demo.images import make_demo_images
from tests.train_runs import (
    REPO,
    SHORT,
    assert_clean_error,
    checkpoint_dir,
    copy_run,
    mount_tmpfs,
    newest_log,
    remount_read_only,
    temporaries,
    train,
    unmount,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished 2-epoch run that keeps both epochs' checkpoints; tests work on copies."""
    base = tmp_path_factory.mktemp("bad-input")
    root, out = base / "data", base / "run"
    done = train(root, out, *SHORT, "TRAIN.CHECKPOINT_FREQ", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    return root, out


def _truncate(path, keep=0.5):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


def test_truncated_checkpoint_at_eval_only_names_the_file(finished, tmp_path):
    root, out = finished
    model_dir = copy_run(out, tmp_path / "model")
    damaged = os.path.join(checkpoint_dir(model_dir), "model.pth.tar-2")
    _truncate(damaged)
    done = train(root, tmp_path / "eval", "--eval-only", "--model-dir", model_dir, *SHORT)
    message = assert_clean_error(done, 1, damaged, "corrupt or incomplete")
    assert "previous epoch's file" in message


def test_resume_falls_back_to_the_newest_intact_checkpoint(finished, tmp_path):
    root, out = finished
    run = copy_run(out, tmp_path / "run")
    folder = checkpoint_dir(run)
    _truncate(os.path.join(folder, "model.pth.tar-2"))
    done = train(root, run, *SHORT, "TRAIN.CHECKPOINT_FREQ", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    log = newest_log(run)
    assert f'Resuming from the newest intact checkpoint instead: "{os.path.join(folder, "model.pth.tar-1")}"' in log
    assert "Previous epoch: 1" in log and "epoch [2/2] batch [10/10]" in log and "* accuracy:" in log
    assert load_checkpoint(os.path.join(folder, "model.pth.tar-2"))["epoch"] == 2
    assert read_pointer(folder) == os.path.join(folder, "model.pth.tar-2")


def test_empty_pointer_at_resume_uses_the_newest_checkpoint(finished, tmp_path):
    root, out = finished
    run = copy_run(out, tmp_path / "run")
    folder = checkpoint_dir(run)
    open(os.path.join(folder, "checkpoint"), "w").close()
    done = train(root, run, *SHORT, "TRAIN.CHECKPOINT_FREQ", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    log = newest_log(run)
    assert "checkpoint\" is empty" in log and "Previous epoch: 2" in log and "epoch [" not in log

    # A pointer naming a file that is not there: the same fallback (read here without a run).
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write("model.pth.tar-7\n")
    path, checkpoint = load_resumable(folder)
    assert path == os.path.join(folder, "model.pth.tar-2") and checkpoint["epoch"] == 2


def test_unwritable_output_folder_is_refused_before_anything_runs(finished, tmp_path):
    root, _ = finished
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = train(root, blocker / "run", *SHORT)
    assert_clean_error(done, 1, f'"{blocker}" is a file', "--output-dir")
    assert blocker.read_text() == "not a folder"

    with pytest.raises(NotADirectoryError, match="is a file; pass another --output-dir"):
        check_output_dir(str(blocker))
    mount = tmp_path / "ro"
    if not mount_tmpfs(mount, "size=1m"):
        pytest.skip("cannot mount a read-only file system here")
    try:
        assert remount_read_only(mount)
        with pytest.raises(OSError, match=f'Cannot write into the output folder "{mount}/run": Read-only file'):
            check_output_dir(str(mount / "run"))
    finally:
        unmount(mount)


def _demo_cfg(root, shots, seed=1, cache_dir=""):
    args = build_parser().parse_args([
        "--root", str(root), "--seed", str(seed), "--trainer", "MMRL",
        "--dataset-config-file", os.path.join(REPO, "configs/datasets/demo.yaml"),
        "--config-file", os.path.join(REPO, "configs/trainers/MMRL/demo.yaml"),
        "DATASET.NUM_SHOTS", str(shots), "DATASET.CACHE_DIR", cache_dir,
    ])
    return setup_cfg(args)


def test_read_only_dataset_folder_caches_elsewhere(tmp_path, capsys):
    mount = tmp_path / "ro-data"
    if not mount_tmpfs(mount, "size=8m"):
        pytest.skip("cannot mount a read-only file system here")
    try:
        make_demo_images(os.path.join(str(mount), "demo"))
        assert remount_read_only(mount)
        dataset = build_dataset(_demo_cfg(mount, shots=2))
        out = capsys.readouterr().out
        assert f"The dataset folder {mount}/demo is read-only: its caches go to " in out
        cache = out.split("its caches go to ")[1].split(" ")[0]
        assert cache.startswith(os.environ["MMRL_CACHE"])
        assert os.listdir(os.path.join(cache, "split_fewshot")) == ["shot_2-seed_1.pkl"]
        assert all(d.impath.startswith(f"{mount}/demo/") for d in dataset.train_x)
        # Read back from there: the same draw.
        again = build_dataset(_demo_cfg(mount, shots=2))
        assert "Loading preprocessed few-shot data from " + cache in capsys.readouterr().out
        assert [d.impath for d in again.train_x] == [d.impath for d in dataset.train_x]
        # DATASET.CACHE_DIR names the folder explicitly.
        build_dataset(_demo_cfg(mount, shots=3, cache_dir=str(tmp_path / "caches")))
        assert os.listdir(tmp_path / "caches" / "demo" / "split_fewshot") == ["shot_3-seed_1.pkl"]
    finally:
        unmount(mount)


def _file_size_limit(limit):
    def apply():
        # The kernel then fails writes past the limit with EFBIG (SIGXFSZ ignored, as a full disk's
        # ENOSPC does not kill either).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_while_saving_keeps_the_previous_checkpoint(finished, tmp_path):
    root, _ = finished
    out = tmp_path / "small-disk"
    if mount_tmpfs(out, "size=2m"):
        # One 1.5 MB checkpoint fits, the next one's temporary file does not.
        try:
            done = train(root, out, *SHORT, "TRAIN.CHECKPOINT_FREQ", "1")
            target = os.path.join(checkpoint_dir(out), "model.pth.tar-2")
            message = assert_clean_error(done, 1, f'Cannot write "{target}"', "No space left on device", "needs 1.5 MB")
            assert "is free in" in message and "unchanged" in message
            folder = checkpoint_dir(out)
            assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-1"]
            assert load_checkpoint(os.path.join(folder, "model.pth.tar-1"))["epoch"] == 1
            assert read_pointer(folder) == os.path.join(folder, "model.pth.tar-1")
        finally:
            unmount(out)
    else:
        # No mount allowed: the process's file-size limit makes the kernel refuse the same write.
        done = train(root, out, *SHORT, preexec_fn=_file_size_limit(1 << 20))
        assert_clean_error(done, 1, "Cannot write", "File too large", "needs 1.5 MB")
        assert temporaries(checkpoint_dir(out)) == []


def test_unreadable_images_are_named_or_skipped(finished, tmp_path):
    root, _ = finished
    data = tmp_path / "data"
    shutil.copytree(os.path.join(str(root), "demo"), str(data / "demo"))
    # An image of the 4-shot draw the runs train on, and a test image.
    drawn = load_pickle(str(data / "demo" / "split_fewshot" / "shot_4-seed_1.pkl"), root=str(data / "demo"))
    split = json.load(open(data / "demo" / "split_demo.json"))
    empty = drawn["train"][5].impath
    broken = str(data / "demo" / "images" / split["test"][3][0])
    open(empty, "wb").close()
    with open(broken, "rb") as f:
        head = f.read(40)
    with open(broken, "wb") as f:
        f.write(head)
    run = ["DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "1", "DATALOADER.NUM_WORKERS", "2"]

    done = train(data, tmp_path / "stop", *run)
    message = assert_clean_error(done, 1, f'Cannot read image "{empty}"', "DATALOADER.SKIP_UNREADABLE True")
    assert "0 bytes" in message

    done = train(data, tmp_path / "skip", *run, "DATALOADER.SKIP_UNREADABLE", "True")
    assert done.returncode == 0, done.stderr[-3000:]
    log = newest_log(tmp_path / "skip")
    assert "Skipped 2 unreadable image(s) (DATALOADER.SKIP_UNREADABLE):" in log
    assert f'Cannot read image "{empty}"' in log and f'Cannot read image "{broken}"' in log
    assert "* total: 69" in log


def test_yaml_syntax_error_names_file_and_line(finished, tmp_path):
    root, _ = finished
    bad = tmp_path / "method.yaml"
    bad.write_text("OPTIM:\n  LR: 0.1\n  STEPSIZE: [1, 2\n  MAX_EPOCH: 2\n")
    done = train(root, tmp_path / "out", "--config-file", str(bad), *SHORT)
    message = assert_clean_error(done, 2, f'YAML syntax error in "{bad}", line 4')
    assert message.startswith("Configuration error: --config-file:")
    # The same last line as every other error of the tools.
    assert done.stderr.rstrip().endswith("\n" + DEBUG_HINT)
    assert not (tmp_path / "out").exists()
