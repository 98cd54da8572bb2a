"""RECOMPUTE auto (mmrl.model.memory): the activation estimate against what autograd saves, the choice
for given budgets, and the trainer's log line; the host allocator keeping freed memory for the next step."""
import os
import subprocess
import sys

import pytest
import torch

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.engine import build_trainer
from mmrl.model.memory import (GB, activation_bytes, choose_recompute, decide_recompute, free_memory_bytes,
                               held_memory_bytes, memory_budget, model_towers)
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import RepArch

LAYERS = (6, 7, 8, 9, 10, 11, 12)
# 40 prompts of four lengths: four groups in the text tower.
PROMPTS = [f"a photo of a {' '.join(['red', 'big', 'cat', 'dog'][:1 + i % 4])}." for i in range(40)]


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the miniature model's products are tiny (and waiting threads spin)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(mini_clip, one_thread):
    torch.manual_seed(0)
    return RepresentationCLIP(mini_clip, PROMPTS, RepArch.from_clip(mini_clip, "MMRL", 5, LAYERS, 32), alpha=0.7)


def saved_activation_bytes(model, fn) -> int:
    """Bytes of the distinct storages autograd saves during ``fn``, but the weights and their casts."""
    weights = list(model.clip_model.parameters()) + list(model.learner.parameters())
    pointers = {w.untyped_storage().data_ptr() for w in weights}
    cast_sizes = {w.numel() * 2 for w in model.clip_model.parameters()}  # autocast's bfloat16 copies
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in pointers and not (t.dtype == torch.bfloat16 and s.nbytes() in cast_sizes):
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch", [2, 8])
def test_estimate_matches_what_autograd_saves(model, precision, batch):
    images, labels = torch.randn(batch, 3, 32, 32), torch.zeros(batch, dtype=torch.long)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            model.forward_train(images, labels, reg_weight=1.0)

    saved = saved_activation_bytes(model, step)
    estimate = activation_bytes(model_towers(model, batch), precision, recompute=False)
    # What the estimate leaves out (features, logits, the learner's maps) is well under 1%.
    assert abs(estimate - saved) < 0.01 * saved, (estimate, saved)


def test_recomputation_keeps_less(model):
    towers = model_towers(model, 4)
    kept, recomputed = (activation_bytes(towers, "fp32", r) for r in (False, True))
    assert recomputed < kept / 3
    assert activation_bytes(towers, "bf16", False) < kept


def test_auto_keeps_the_activations_when_they_fit():
    assert decide_recompute("auto", 2 * GB, GB // 2, 3 * GB, "budget 3 GB") == (
        False, "auto: activations estimated at 2.00 GB kept, 0.50 GB recomputed, kept: 2.00 GB fits the budget 3 GB")
    on, why = decide_recompute("auto", 2 * GB, GB // 2, GB, "budget 1 GB")
    assert on and why.endswith("recomputed: 2.00 GB exceeds the budget 1 GB")
    # An explicit choice is obeyed whatever the budget.
    assert decide_recompute("on", GB, GB // 2, None)[0] is True
    assert decide_recompute("off", 100 * GB, GB, None) == (
        False, "as configured; activations estimated at 100.00 GB kept, 1.00 GB recomputed")
    with pytest.raises(ValueError, match="RECOMPUTE must be auto, on or off, got 'sometimes'"):
        decide_recompute("sometimes", GB, GB, GB)


def test_budget_from_the_key_or_what_the_run_holds_on_cpu(model):
    cpu = torch.device("cpu")
    assert memory_budget(cpu, 1.5) == (int(1.5 * GB), "budget 1.5 GB (MEMORY_BUDGET_GB)")
    # This test process holds far less than half of the machine's available memory, so on CPU the
    # budget is what it holds (the kept activations may at most double the run's footprint).
    held = held_memory_bytes(cpu)
    assert 0 < held < 0.5 * free_memory_bytes(cpu)
    budget, text = memory_budget(cpu)
    assert abs(budget - held) < 64 * 2 ** 20, (budget, held)
    assert text.startswith(f"budget {budget / GB:.2f} GB (what this run holds: on CPU the kept activations may "
                           "at most double it; 50% of the ") and text.endswith("GB available memory is more)")
    # A step of this model keeps a few MB: it fits.
    assert choose_recompute(model, "auto", 4, "fp32", torch.device("cpu"))[0] is False
    assert choose_recompute(model, "auto", 4, "fp32", torch.device("cpu"), budget_gb=1e-6)[0] is True


def test_trainer_logs_its_choice(tmp_path, capsys, one_thread):
    def build(*opts):
        argv = ["--root", str(tmp_path / "data"), "--seed", "1", "--trainer", "MMRL",
                "--dataset-config-file", "configs/datasets/demo.yaml", "--config-file",
                "configs/trainers/MMRL/demo.yaml", "--output-dir", str(tmp_path / "out"), *opts]
        trainer = build_trainer(setup_cfg(build_parser().parse_args(argv)))
        out = capsys.readouterr().out.splitlines()
        lines = [line for line in out if line.startswith("Recomputation")]
        # On CPU the trainer keeps the memory a step frees for the next one, and says so.
        assert [line for line in out if line.startswith("Host memory: ")] == [
            "Host memory: freed memory kept for the next step (glibc: blocks up to 32 MB from its heap, the heap "
            "not trimmed; MALLOC_TRIM_THRESHOLD_ or another MALLOC_ variable keeps your own)"]
        return trainer, lines

    trainer, lines = build("TRAINER.MMRL.MEMORY_BUDGET_GB", "0.000001")
    assert trainer.recompute is True and trainer.model.recompute is True
    assert len(lines) == 1 and lines[0].startswith("Recomputation on (TRAINER.MMRL.RECOMPUTE auto: activations "
                                                   "estimated at ")
    assert lines[0].endswith("exceeds the budget 1e-06 GB (MEMORY_BUDGET_GB))")
    trainer, lines = build()
    assert trainer.model.recompute is False
    assert "fits the budget" in lines[0] and "(what this run holds: on CPU" in lines[0]


# Rounds of what a step does to the allocator: 24 tensors of 8 MB written, then all freed. Prints the
# page faults of rounds 2 to 4 and the pages they wrote.
STEPS = """
import resource, sys, torch
from mmrl.model.memory import keep_freed_memory
if sys.argv[1] == "keep":
    print(keep_freed_memory())
def round_():
    return [torch.ones(2 * 2 ** 20) for _ in range(24)]
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    round_()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, 3 * 24 * 8 * 2 ** 20 // resource.getpagesize())
"""


def faults_per_page(mode: str, **env) -> "tuple[str, float]":
    proc = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    *said, counts = proc.stdout.strip().splitlines()
    faults, pages = (int(n) for n in counts.split())
    return " ".join(said), faults / pages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_kept_for_the_next_step():
    # glibc by default: the heap's free top is given back, and every round faults its pages in again.
    _, plain = faults_per_page("plain")
    assert plain > 0.5
    said, kept = faults_per_page("keep")
    assert said.startswith("freed memory kept for the next step (glibc: blocks up to 32 MB from its heap")
    # (one block's pages at most: a round's small objects can land between the blocks it reuses)
    assert kept < 0.1, kept
    # A user's own MALLOC_ setting is kept: nothing is changed.
    said, tuned = faults_per_page("keep", MALLOC_TOP_PAD_="131072")
    assert said == "glibc's allocator as MALLOC_TOP_PAD_ sets it"
    assert tuned > 0.5
