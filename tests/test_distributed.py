"""Data-parallel training through torchrun (Gloo, processes on 127.0.0.1 started here): N ranks give
what one process gives, only rank 0 writes, a crash ends every rank, and a killed run resumes.

The one-process reference runs and the 2-rank runs are module fixtures shared by the tests; every run
is a real ``train.py`` main() (through tests/train_harness.py, which records the full-precision losses).
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.data.data_manager import DatasetWrapper
from mmrl.dassl.data.samplers import GlobalBatchSlicer, ShardSampler
from mmrl.dassl.data.transforms import build_transform
from mmrl.dassl.utils.distributed import split_range
from mmrl.demo.images import make_demo_images
from tests.dataset_trees import tiny_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(REPO, "tests", "train_harness.py")
LEARNER = "MultiModalRepresentationLearner"
TIMEOUT_S = 60  # DISTRIBUTED.TIMEOUT of these runs
# Two epochs of two global batches of 4 (2 shots x 5 base classes), then base and new evaluation.
SETTINGS = ["DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "2", "TASK", "B2N", "DATALOADER.SEEDED_AUGMENTATION",
            "True", "DISTRIBUTED.TIMEOUT", str(TIMEOUT_S)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(**extra) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", **extra)
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def torchrun(nproc: int) -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port())]


def two_nodes(node_rank: int, port: int) -> List[str]:
    """One process on each of two "nodes" (two torchrun agents), joined by c10d rendezvous."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"test{port}",
            "--node-rank", str(node_rank)]


def start(launcher: List[str], record, *runs: List[str], **env) -> subprocess.Popen:
    argv = [HARNESS, str(record), "--"]
    for i, run in enumerate(runs):
        argv += (["--then"] if i else []) + run
    return subprocess.Popen(launcher + argv, cwd=REPO, env=run_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, record=None, check: bool = True) -> str:
    """The run's output; with ``check``, it must exit 0 and (given its record) every main() return 0."""
    out, _ = proc.communicate(timeout=600)
    if check and (proc.returncode != 0 or (record is not None and any(json.load(open(record))["rc"]))):
        raise AssertionError(f"run failed ({proc.returncode}):\n{out[-4000:]}")
    return out


def b2n_runs(trainer: str, root, out) -> List[List[str]]:
    """Train on the base classes (then test on them), and evaluate the result on the new classes."""
    common = ["--root", str(root), "--seed", "1", "--trainer", trainer,
              "--dataset-config-file", "configs/datasets/demo.yaml",
              "--config-file", f"configs/trainers/{trainer}/demo.yaml"]
    return [common + ["--output-dir", str(out / "base")] + SETTINGS + ["DATASET.SUBSAMPLE_CLASSES", "base"],
            common + ["--output-dir", str(out / "new"), "--model-dir", str(out / "base"), "--eval-only"]
            + SETTINGS + ["DATASET.SUBSAMPLE_CLASSES", "new"]]


def result_lines(log_path) -> List[str]:
    return re.findall(r"^\* (?:correct|accuracy): .*$", open(log_path).read(), re.M)


def final_state(out) -> Dict[str, torch.Tensor]:
    return torch.load(out / "base" / LEARNER / "model.pth.tar-2", map_location="cpu")["state_dict"]


def listing(folder) -> List[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo_images(str(root / "demo"))
    return root


@pytest.fixture(scope="module")
def launches(shared_root, tmp_path_factory):
    """Every launch of this file, started at once (most of a launch's time is torchrun and imports
    waiting, not computing), each test then waiting for its own.

    Per trainer the one-process reference ("ref") and the 2-rank run ("d2"); the 2-rank MMRL run gets
    a data root of its own, so that its rank 0 generates the demo images and writes the few-shot
    cache while rank 1 waits.
    """
    base = tmp_path_factory.mktemp("runs")
    procs: Dict[str, subprocess.Popen] = {}
    for trainer in ("MMRL", "MMRLpp"):
        for kind, launcher in (("ref", [sys.executable]), ("d2", torchrun(2))):
            root = base / "own-root" if (trainer, kind) == ("MMRL", "d2") else shared_root
            procs[f"{trainer}-{kind}"] = start(launcher, base / f"{trainer}-{kind}.json",
                                               *b2n_runs(trainer, root, base / f"{trainer}-{kind}"))
    # Seeded augmentation with NUM_WORKERS 2 against the reference's 0.
    procs["workers"] = start([sys.executable], base / "workers.json", b2n_runs("MMRL", shared_root, base / "workers")[0]
                             + ["DATALOADER.NUM_WORKERS", "2", "TEST.NO_TEST", "True"])
    # Two nodes of one process each (c10d rendezvous); rank 1 raises at the start of the second epoch.
    port = free_port()
    crash = b2n_runs("MMRL", shared_root, base / "crash")[0]
    for node in (0, 1):
        procs[f"crash{node}"] = start(two_nodes(node, port), base / f"crash{node}.json", crash, HARNESS_FAIL="1:1:0",
                                      HARNESS_EXIT_RC="1")
    # Bad input, two runs in one launch: a global batch that does not divide by the world size, and
    # more ranks than classes (a folder dataset of one class).
    one_class = base / "one_class"
    for i in range(20):  # 4 to validate on and 6 to test on: enough for 2 ranks
        tiny_image(str(one_class / "cat" / f"{i}.png"), value=i * 10)
    odd_batch = b2n_runs("MMRL", shared_root, base / "odd")[0] + ["DATALOADER.TRAIN_X.BATCH_SIZE", "3"]
    few_classes = b2n_runs("MMRL", base, base / "few")[0] + [
        "DATASET.NAME", "ImageFolder", "DATASET.FOLDER.DIR", "one_class", "DATASET.NUM_SHOTS", "-1"]
    # A data root whose images are all unreadable, skipped with SKIP_UNREADABLE: no rank can skip its
    # whole slice of a global batch (the others would wait for its gradients).
    unreadable = base / "unreadable"
    shutil.copytree(shared_root / "demo", unreadable / "demo")
    for folder, _, files in os.walk(unreadable / "demo" / "images"):
        for name in files:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"not an image")
    skip_all = b2n_runs("MMRL", unreadable, base / "skip")[0] + ["DATALOADER.SKIP_UNREADABLE", "True"]
    procs["bad"] = start(torchrun(2), base / "bad.json", odd_batch, few_classes, skip_all)
    yield base, procs, time.time()
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def runs(launches):
    base, procs, _ = launches
    done = {}
    for trainer in ("MMRL", "MMRLpp"):
        for kind in ("ref", "d2"):
            record = base / f"{trainer}-{kind}.json"
            finish(procs[f"{trainer}-{kind}"], record)
            done[trainer, kind] = {"out": base / f"{trainer}-{kind}", "losses": json.load(open(record))["losses"]}
    done["own_root"] = base / "own-root"
    return done


@pytest.mark.parametrize("trainer", ["MMRL", "MMRLpp"])
def test_two_ranks_equal_one_process(runs, trainer):
    ref, d2 = runs[trainer, "ref"], runs[trainer, "d2"]
    assert len(ref["losses"]) == len(d2["losses"]) == 4
    assert max(abs(a - b) for a, b in zip(ref["losses"], d2["losses"])) < 1e-5
    a, b = final_state(ref["out"]), final_state(d2["out"])
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    for split in ("base", "new"):
        lines = result_lines(ref["out"] / split / "log.txt")
        assert len(lines) == 2 and lines == result_lines(d2["out"] / split / "log.txt"), split
    log = open(d2["out"] / "base" / "log.txt").read()
    assert "Distributed run: 2 processes (gloo)" in log
    assert "Seeded augmentation" in log


def test_only_rank_0_writes_files(runs):
    ref, d2 = runs["MMRL", "ref"]["out"], runs["MMRL", "d2"]["out"]
    # One log (a second writer would have left log.txt-<time>), the same checkpoint files.
    assert listing(d2) == listing(ref)
    assert listing(d2 / "new") == ["config.yaml", "log.txt", "results.json"]
    own = runs["own_root"] / "demo"
    assert sorted(os.listdir(own)) == ["images", "split_demo.json", "split_fewshot"]
    assert os.listdir(own / "split_fewshot") == ["shot_2-seed_1.pkl"]


def test_seeded_augmentation_same_losses_with_loader_workers(launches, runs):
    base, procs, _ = launches
    finish(procs["workers"], base / "workers.json")
    assert json.load(open(base / "workers.json"))["losses"] == runs["MMRL", "ref"]["losses"]


def test_crash_on_one_rank_ends_all_and_the_run_resumes(launches, runs):
    """Every rank of the two-node run stops, well within the timeout, rank 1 with its error, rank 0 naming it;
    the rerun (2 ranks on one node) continues at epoch 1 and ends with the uninterrupted run's checkpoint."""
    base, procs, began = launches
    # Both nodes are read at once, so that each one's end is timed when it comes.
    ends, outs = [0.0, 0.0], ["", ""]

    def wait(node: int) -> None:
        outs[node] = finish(procs[f"crash{node}"], check=False)
        ends[node] = time.time()

    waiters = [threading.Thread(target=wait, args=(node,)) for node in (0, 1)]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join()
    # Rank 1 fails with its traceback (a bug, not bad input), its torchrun with it; rank 0 names it in
    # one line and its main() returns 1, so its process and its torchrun exit 1, as train.py's would
    # (a torchrun whose process exits 0 waits at its exit barrier for the failed node, 300 s).
    failed = [i for i, o in enumerate(outs) if "RuntimeError: injected failure on rank 1 at epoch 2" in o]
    assert len(failed) == 1 and [p.returncode for p in (procs["crash0"], procs["crash1"])] == [1, 1], outs
    survivor = outs[1 - failed[0]]
    # Reset or closed: how the peer's socket ended (a crash closes it, a kill resets it) is a race.
    assert re.search(r"^\[rank 0\] Error: rank 1 stopped \(connection (reset|closed)\) during epoch 2; rerun the "
                     r"same command to resume from epoch 1$", survivor, re.M), survivor[-3000:]
    assert json.load(open(base / f"crash{1 - failed[0]}.json"))["rc"] in ([1], [143])
    assert max(ends) - min(ends) < TIMEOUT_S
    out = base / "crash"
    assert sorted(os.listdir(out / "base" / LEARNER)) == ["checkpoint", "model.pth.tar-1"]

    finish(start(torchrun(2), base / "resume.json", b2n_runs("MMRL", runs["own_root"], out)[0]), base / "resume.json")
    logs = sorted(f for f in os.listdir(out / "base") if f.startswith("log.txt"))
    assert len(logs) == 2 and "Previous epoch: 1" in open(out / "base" / logs[1]).read()
    assert json.load(open(base / "resume.json"))["losses"] == runs["MMRL", "d2"]["losses"][2:]
    resumed, whole = final_state(out), final_state(runs["MMRL", "d2"]["out"])
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


@pytest.mark.slurm
def test_srun_torchrun_equals_one_process(runs, tmp_path):
    """The README's SLURM line: srun starts one torchrun per node (one here), which starts the ranks."""
    record, out = tmp_path / "srun.json", tmp_path / "srun"
    launcher = ["srun", "--nodes", "1", "--ntasks", "1", "--cpus-per-task", "2", "--time", "10",
                sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "srun-test"]
    finish(start(launcher, record, b2n_runs("MMRL", runs["own_root"], out)[0]), record)
    assert json.load(open(record))["losses"] == pytest.approx(runs["MMRL", "d2"]["losses"], abs=1e-6)
    assert "Distributed run: 2 processes (gloo)" in open(out / "base" / "log.txt").read()


def test_bad_input_fails_on_every_rank_with_its_reason(launches):
    base, procs, _ = launches
    out = finish(procs["bad"])
    for record in ("bad.json", "bad.json.rank1"):
        assert json.load(open(base / record))["rc"] == [1, 1, 1], out
    for rank in (0, 1):
        assert (f"[rank {rank}] Error: DATALOADER.TRAIN_X.BATCH_SIZE 3 is the global batch and must divide by "
                "the world size 2") in out
        assert f"[rank {rank}] Error: 1 classes cannot be shared by 2 ranks" in out
        assert (f"[rank {rank}] Error: every image of this rank's slice of a training batch is unreadable "
                "(Cannot read image") in out


# ---- the pieces, in one process ----------------------------------------------------------------------

@pytest.mark.parametrize("n,world,drop_last", [(10, 2, True), (10, 2, False), (10, 3, False), (12, 4, True)])
def test_global_batch_slices_are_the_one_process_batches(n, world, drop_last):
    batch = world * 2
    order = random.Random(n).sample(range(n), n)
    one = [order[i:i + batch] for i in range(0, n, batch)]
    if drop_last and len(one[-1]) < batch:
        one = one[:-1]
    slicers = [GlobalBatchSlicer(order, batch, drop_last, r, world) for r in range(world)]
    per_rank = [list(s) for s in slicers]
    assert all(len(s) == len(one) for s in slicers)
    assert [sum((ranks[i] for ranks in per_rank), []) for i in range(len(one))] == one
    assert all(len(b) == batch // world for b in per_rank[0][: n // batch])


def test_a_last_batch_smaller_than_the_world_is_refused():
    with pytest.raises(ValueError, match="the last batch holds 1 images, fewer than the 3 ranks"):
        list(GlobalBatchSlicer(range(7), 6, False, 0, 3))


def test_shards_concatenate_to_the_dataset_order():
    assert split_range(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert sum((list(ShardSampler(11, r, 4)) for r in range(4)), []) == list(range(11))


def test_seeded_augmentation_is_a_function_of_seed_epoch_and_index(shared_root):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    from mmrl.data.benchmark import read_split

    train, _, _ = read_split(str(shared_root / "demo" / "split_demo.json"), str(shared_root / "demo" / "images"))
    data = DatasetWrapper(cfg, train[:3], transform=build_transform(cfg, is_train=True), is_train=True)
    data.augmentation_seed = 5
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = data[2]["img"]
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left as it was
    torch.manual_seed(123)
    assert torch.equal(data[2]["img"], first)  # whatever the global stream
    data.epoch = 1
    assert not torch.equal(data[2]["img"], first)
    data.augmentation_seed, data.epoch = None, 0  # the default: the global generators, as before
    torch.manual_seed(0)
    a, b = data[2]["img"], data[2]["img"]
    torch.manual_seed(0)
    assert torch.equal(data[2]["img"], a) and not torch.equal(a, b)


def read_or_empty(path) -> str:
    return open(path).read() if os.path.isfile(path) else ""


def wait_until(condition, timeout: float = 600.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out after {timeout:.0f}s"
        time.sleep(0.1)


def rank_pid(agents: List[subprocess.Popen], rank: int, wait_s: float = 30.0) -> int:
    """The pid of the worker whose RANK is ``rank`` among those of the torchrun ``agents`` (the
    rendezvous, not the node rank, decides which node runs which rank)."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        pid = _find_rank(agents, rank)
        if pid:
            return pid
        time.sleep(0.2)
    raise AssertionError(f"no worker of RANK {rank} under torchrun {[(a.pid, a.poll()) for a in agents]}")


def _find_rank(agents: List[subprocess.Popen], rank: int) -> int:
    for agent in agents:
        for pid in subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout.split():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            if f"RANK={rank}".encode() in environ:
                return int(pid)
    return 0


def outputs_once_rank0_returned(agents: List[subprocess.Popen], records: List[Path], grace_s: float = 30.0) -> str:
    """The agents' output once rank 0's main() has returned (its record is written). An agent whose
    worker was killed can wait for the lost node to rejoin the rendezvous for torchrun's join timeout
    (10 minutes); what this test asserts is rank 0's, so such an agent is stopped after ``grace_s``."""
    wait_until(lambda: all(a.poll() is not None for a in agents) or any(r.is_file() for r in records))
    deadline = time.time() + grace_s
    outs = []
    for agent in agents:
        try:
            out, _ = agent.communicate(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            agent.kill()
            out, _ = agent.communicate()
        outs.append(out)
    return "".join(outs)


def test_a_killed_rank_is_named_by_the_survivor(shared_root, tmp_path):
    """kill -9 of rank 1 in its second epoch: rank 0 ends with one line naming it and where the run
    resumes, never the backend's traceback, whatever stops it first (Gloo's connection reset, or
    torchrun's SIGTERM once it sees a worker die)."""
    run = b2n_runs("MMRL", shared_root, tmp_path / "two-nodes")[0][:-len(SETTINGS)] + [
        "DATASET.NUM_SHOTS", "8", "OPTIM.MAX_EPOCH", "10", "TRAIN.PRINT_FREQ", "1", "DISTRIBUTED.TIMEOUT", str(TIMEOUT_S)]
    port = free_port()
    # One after the other: a run left waiting would train to its end before its kill.
    launch = {"two-nodes": lambda: [start(two_nodes(node, port), tmp_path / f"n{node}.json", run) for node in (0, 1)],
              "one-node": lambda: [start(torchrun(2), tmp_path / "one.json",
                                         [a.replace("two-nodes", "one-node") for a in run])]}
    agents: Dict[str, List[subprocess.Popen]] = {}
    seen = {}
    try:
        for name in launch:
            procs = agents[name] = launch[name]()
            # Rank 0 alone writes the log, line by line: the moment to kill is read there.
            wait_until(lambda: "epoch [2/10] batch [3/" in read_or_empty(tmp_path / name / "base" / "log.txt"))
            os.kill(rank_pid(procs, 1), signal.SIGKILL)
            records = [tmp_path / "one.json"] if name == "one-node" else [tmp_path / "n0.json", tmp_path / "n1.json"]
            seen[name] = outputs_once_rank0_returned(procs, records)
    finally:
        for proc in (p for procs in agents.values() for p in procs if p.poll() is None):
            proc.kill()
            proc.wait()
    line = re.compile(r"^\[rank 0\] Error: rank 1 stopped \(connection (?:reset|closed)\) during epoch (\d+); "
                      r"rerun the same command to resume from epoch (\d+)$", re.M)
    # On rank 1's node torchrun stops rank 0 with SIGTERM while it names the lost rank: 143. Alone on
    # its node, rank 0 ends with 1, or 143 when its own agent, losing the rendezvous, stops it first.
    for name, codes in (("two-nodes", ([1], [143])), ("one-node", ([143],))):
        out = seen[name]
        found = line.findall(out)
        assert len(found) == 1, (name, [l for l in out.splitlines() if "[rank" in l or "Error:" in l])
        epoch, resume = map(int, found[0])
        assert epoch >= 2 and resume == epoch - 1
        # Rank 0's main() return code, as the harness recorded it (whichever node it ran on).
        records = [r for r in (tmp_path / "n0.json", tmp_path / "n1.json", tmp_path / "one.json")
                   if r.is_file() and (r.name == "one.json") == (name == "one-node")]
        assert len(records) == 1 and json.load(open(records[0]))["rc"] in codes, out[-4000:]
        assert "gloo/transport" not in out and "train.py\", line" not in out, out[-4000:]
        assert line.search(open(tmp_path / name / "base" / "log.txt").read())
        saved = sorted(os.listdir(tmp_path / name / "base" / LEARNER))
        assert "checkpoint" in saved and f"model.pth.tar-{epoch - 1}" in saved and f"model.pth.tar-{epoch}" not in saved
