"""The four precisions (fp32, fp16, amp, bf16) on the demo with the miniature CLIP, on CPU: training,
evaluation, the dtypes they are designed to give, amp's loss scaling, and checkpoints across precisions.

fp16 and amp run on CPU only when asked (``PREC_ON_CPU``), exactly as they run on CUDA. The tests marked
``gpu`` repeat the matrix on CUDA (skipped without one).
"""
import math
import shutil

import pytest
import torch

from tests.test_mmrl_trainer import make_trainer
from trainers.mmrl import EvalContext

PRECISIONS = ("fp32", "fp16", "amp", "bf16")
# What each precision is designed to run: CLIP's weights, the activations of its blocks (a linear
# layer's output), the trainable tensors (always fp32: unlike the reference under fp16, ours never halves them).
DESIGN = {
    "fp32": (torch.float32, torch.float32),
    "fp16": (torch.float16, torch.float16),
    "amp": (torch.float32, torch.float16),
    "bf16": (torch.float32, torch.bfloat16),
}
# One short epoch (4 shots x 10 classes = 10 steps of 4) at a high learning rate, so the learner moves
# away from its initialisation and the predictions are not near ties.
FAST = ("DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "1", "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.005")


def devices():
    return ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def precision_trainer(root, out, prec, device, *opts):
    trainer = make_trainer(root, out, "MMRL", "TRAINER.MMRL.PREC", prec, "TRAINER.MMRL.PREC_ON_CPU", "True",
                           "USE_CUDA", str(device == "cuda"), *FAST, *opts)
    assert trainer.device.type == device
    return trainer


def instrument(trainer):
    """Record the losses, the dtypes of a linear layer's output in each tower, and the scaler's calls."""
    seen = {"losses": [], "text": set(), "visual": set(), "scaled": 0}
    clip_model = trainer.clip_model
    for tower, block in (("text", clip_model.transformer.resblocks[-1]),
                         ("visual", clip_model.visual.transformer.resblocks[-1])):
        block.mlp.c_fc.register_forward_hook(lambda m, i, o, tower=tower: seen[tower].add(o.dtype))
    step = trainer.forward_backward

    def forward_backward(batch):
        summary = step(batch)
        seen["losses"].append(summary["loss"])
        return summary

    trainer.forward_backward = forward_backward
    if trainer.scaler is not None:
        scale = trainer.scaler.scale

        def counted(loss):
            seen["scaled"] += 1
            return scale(loss)

        trainer.scaler.scale = counted
    return seen


def all_test_images(trainer):
    return torch.cat([batch["img"] for batch in trainer.test_loader]).to(trainer.device)


def predictions_logits(trainer, images):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        context = EvalContext(trainer.evaluation_context().text_features, "fused")
        return trainer.model_inference(images, context).float().cpu()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def train_matrix(root, tmp_path_factory, device):
    runs = {}
    for prec in PRECISIONS:
        out = tmp_path_factory.mktemp(f"{device}_{prec}")
        trainer = precision_trainer(root, out, prec, device)
        seen = instrument(trainer)
        trainer.train()  # one epoch, then the final evaluation
        seen["accuracy"] = trainer.test()
        runs[prec] = (trainer, out, seen)
    return runs


@pytest.fixture(scope="module", params=devices())
def matrix(request, root, tmp_path_factory):
    return request.param, train_matrix(root, tmp_path_factory, request.param)


@pytest.mark.parametrize("prec", PRECISIONS)
def test_epoch_and_evaluation_are_finite_with_designed_dtypes(matrix, prec):
    _, runs = matrix
    trainer, _, seen = runs[prec]
    assert trainer.precision == prec
    assert len(seen["losses"]) == trainer.num_batches == 10
    assert all(math.isfinite(loss) for loss in seen["losses"]), seen["losses"]
    assert 0.0 <= seen["accuracy"] <= 100.0
    weights, activations = DESIGN[prec]
    clip_model = trainer.clip_model
    assert clip_model.visual.conv1.weight.dtype == weights
    assert clip_model.transformer.resblocks[0].attn.in_proj_weight.dtype == weights
    assert clip_model.ln_final.weight.dtype == torch.float32  # CLIP's layer norms always compute in fp32
    assert seen["text"] == {activations} and seen["visual"] == {activations}
    learner = trainer.model.learner
    assert {p.dtype for p in learner.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in learner.parameters() if p.grad is not None} == {torch.float32}


def test_scaler_is_used_exactly_in_amp(matrix):
    _, runs = matrix
    for prec, (trainer, out, seen) in runs.items():
        checkpoint = torch.load(out / "MultiModalRepresentationLearner" / "model.pth.tar-1", map_location="cpu",
                                weights_only=False)
        if prec == "amp":
            assert trainer.scaler is not None and seen["scaled"] == len(seen["losses"])
            assert checkpoint["scaler"]["scale"] == trainer.scaler.get_scale()
        else:
            assert trainer.scaler is None and seen["scaled"] == 0
            assert "scaler" not in checkpoint


def test_checkpoint_of_each_precision_predicts_alike_under_every_other(matrix):
    """Each checkpoint, evaluated under each precision, against its fp32 evaluation (the exact predictions)."""
    _, runs = matrix
    images = all_test_images(runs["fp32"][0])
    assert images.shape[0] == 70
    agreement, logit_gap = {}, {}
    for source, (_, out, _) in runs.items():
        logits = {}
        for target, (other, _, _) in runs.items():
            other.load_model(str(out))
            logits[target] = predictions_logits(other, images)
        for target, value in logits.items():
            same = (value.argmax(1) == logits["fp32"].argmax(1)).float().mean().item()
            agreement[source, target] = same
            logit_gap[source, target] = (value - logits["fp32"]).abs().max().item()
    table = {f"{s} ckpt / {t}": f"{agreement[s, t]:.1%}, {logit_gap[s, t]:.3f}" for s, t in agreement}
    assert min(agreement.values()) >= 0.95, table
    # fp32 reloads exactly. Observed on CPU (AVX-512): logits (scale 100) within 0.06 of fp32's under
    # fp16 and amp, within 0.31 under bf16 (8 bits of mantissa); the fewest same predictions, 95.7%
    # (3 of 70 flipped), for the amp checkpoint under bf16: the random CLIP's margins are small.
    assert all(logit_gap[s, "fp32"] == 0.0 for s in runs), table
    assert max(logit_gap.values()) < 1.5, table


def test_resume_under_amp_restores_the_scaler(matrix, root, tmp_path):
    device, runs = matrix
    trainer, out, _ = runs["amp"]
    saved = {"scale": trainer.scaler.get_scale(), "tracker": int(trainer.scaler._get_growth_tracker())}
    # The loss scale moved (an overflow halves it) or counted steps: a fresh scaler would differ.
    assert saved != {"scale": 65536.0, "tracker": 0}
    shutil.copytree(out, tmp_path / "run")
    resumed = precision_trainer(root, tmp_path / "run", "amp", device, "OPTIM.MAX_EPOCH", "2")
    assert resumed.scaler.get_scale() == 65536.0  # before resuming
    # A longer MAX_EPOCH is another config: resuming under it is refused unless forced (--force).
    resumed.force = True
    seen = instrument(resumed)
    resumed.before_train()
    assert resumed.start_epoch == 1
    assert {"scale": resumed.scaler.get_scale(), "tracker": int(resumed.scaler._get_growth_tracker())} == saved
    resumed.epoch = 1
    resumed.run_epoch()
    assert len(seen["losses"]) == 10 and all(math.isfinite(x) for x in seen["losses"])


@pytest.mark.gpu
def test_recompute_on_and_off_agree_under_amp_on_cuda(root, tmp_path):
    grads = {}
    for choice in ("on", "off"):
        trainer = precision_trainer(root, tmp_path / choice, "amp", "cuda", "TRAINER.MMRL.RECOMPUTE", choice)
        assert trainer.recompute == (choice == "on")
        trainer.set_model_mode("train")
        batch = next(iter(trainer.train_loader_x))
        image, label = trainer.parse_batch_train(batch)
        with trainer.autocast():
            loss = trainer.model.forward_train(image, label, reg_weight=1.0).loss
        loss.backward()
        grads[choice] = (loss.item(), torch.cat([p.grad.flatten() for p in trainer.model.learner.parameters()]))
    assert grads["on"][0] == pytest.approx(grads["off"][0], abs=1e-3)
    assert torch.allclose(grads["on"][1], grads["off"][1], atol=1e-3, rtol=1e-2)
