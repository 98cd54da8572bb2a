"""CoOp (trainers/coop.py, mmrl/model/coop.py) against the published code's forward
(tests/reference_prompting.py): the same initial context and batches give the same SGD losses and
final logits; the context from a phrase is its token embeddings; a published checkpoint loads and
gives the published logits."""
import pytest
import torch
import torch.nn.functional as F

from mmrl.model.clip_loader import tokenize
from mmrl.model.coop import PromptCLIP
from mmrl.model.prompted_text import context_prompts
from tests import reference_prompting as ref
from tests.test_trainer_contract import make

CLASSNAMES = ["dog", "red_double_decker bus", "Annual Crop Land", "cat", "sea turtle"]


def close(a, b, tol=1e-5):
    assert (a - b).abs().max() <= tol * b.abs().max(), float((a - b).abs().max() / b.abs().max())


def batches(n=3, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 3, 32, 32, generator=g), torch.randint(0, len(CLASSNAMES), (b,), generator=g))
            for _ in range(n)]


def sgd(params):
    # Dassl's SGD settings of the CoOp configs (momentum 0.9, weight decay 5e-4), with a large LR so
    # that three steps move the context well beyond the tolerance.
    return torch.optim.SGD(params, lr=2.0, momentum=0.9, weight_decay=5e-4)


@pytest.mark.parametrize("position, csc", [("end", False), ("middle", False), ("front", True)])
def test_training_losses_and_logits_equal_the_published_forward(mini_clip, position, csc):
    ours = PromptCLIP(mini_clip, CLASSNAMES, n_ctx=4, csc=csc, position=position,
                      generator=torch.Generator().manual_seed(1))
    ctx = torch.nn.Parameter(ours.learner.ctx.detach().clone())
    start = ctx.detach().clone()
    prompts = context_prompts(ours.prompt_prefix, CLASSNAMES)
    name_lens = [len(tokenize([c.replace("_", " ")])[0].nonzero()) - 2 for c in CLASSNAMES]
    optim_ours, optim_ref = sgd(ours.learner.parameters()), sgd([ctx])
    for images, labels in batches():
        _, loss = ours.forward_train(images, labels)
        theirs = F.cross_entropy(ref.coop_logits(mini_clip, prompts, ctx, images, position, name_lens), labels)
        assert abs(loss.item() - theirs.item()) <= 1e-5 * abs(theirs.item())
        for optim, value in ((optim_ours, loss), (optim_ref, theirs)):
            optim.zero_grad()
            value.backward()
            optim.step()
    close(ours.learner.ctx.detach(), ctx.detach())
    assert (ctx.detach() - start).abs().max() > 1e-3  # the steps moved the context
    images = batches(1, 6, seed=5)[0][0]
    with torch.no_grad():
        close(ours.logits(images), ref.coop_logits(mini_clip, prompts, ctx, images, position, name_lens))


def test_context_from_a_phrase(mini_clip):
    model = PromptCLIP(mini_clip, CLASSNAMES, n_ctx=16, ctx_init="a photo of a")
    assert model.learner.n_ctx == 4 and model.prompt_prefix == "a photo of a"
    assert torch.equal(model.learner.ctx.detach(), mini_clip.token_embedding.weight[tokenize(["a photo of a"])[0, 1:5]])
    random = PromptCLIP(mini_clip, CLASSNAMES, n_ctx=16, generator=torch.Generator().manual_seed(0))
    assert random.prompt_prefix == " ".join(["X"] * 16) and random.learner.ctx.shape == (16, 128)
    assert abs(random.learner.ctx.std().item() - 0.02) < 0.002
    csc = PromptCLIP(mini_clip, CLASSNAMES, n_ctx=8, csc=True)
    assert csc.learner.ctx.shape == (len(CLASSNAMES), 8, 128)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_a_published_checkpoint_loads_and_gives_the_published_logits(root, tmp_path):
    trainer = make("CoOp", root, tmp_path / "eval", "TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", "6")
    classnames = trainer.dm.dataset.classnames
    learned = 0.05 * torch.randn(6, 128, generator=torch.Generator().manual_seed(3))
    # The published fp16 learner saves its context in half precision.
    ref.published_checkpoint(tmp_path / "run", {"ctx": learned.half()}, 50, len(classnames), 70, 128)
    trainer.load_model(str(tmp_path / "run"))
    images = batches(1, 5)[0][0]
    prompts = context_prompts(trainer.model.prompt_prefix, classnames)
    with torch.no_grad():
        theirs = ref.coop_logits(trainer.model.clip_model, prompts, learned.half().float(), images)
        close(trainer.model_inference(images, trainer.evaluation_context()), theirs)
    assert trainer.model_epoch == 50
    # A checkpoint of another context length is refused with the key named.
    ref.published_checkpoint(tmp_path / "other", {"ctx": learned[:4]}, 50, len(classnames), 70, 128)
    with pytest.raises(ValueError, match="'ctx' has shape \\[4, 128\\]"):
        trainer.load_model(str(tmp_path / "other"))


def test_config_keys_are_the_published_ones(root, tmp_path):
    trainer = make("CoOp", root, tmp_path)
    node = trainer.cfg.TRAINER.COOP
    assert (node.N_CTX, node.CSC, node.CTX_INIT, node.PREC, node.CLASS_TOKEN_POSITION) == (16, False, "a photo of a",
                                                                                           "fp16", "end")
    assert trainer.get_model_names() == ["prompt_learner"]
    assert sorted(trainer.model.learner.state_dict()) == ["ctx"]
    with pytest.raises(ValueError, match="TRAINER.COOP.CLASS_TOKEN_POSITION"):
        make("CoOp", root, tmp_path / "bad", "TRAINER.COOP.CLASS_TOKEN_POSITION", "left")


@pytest.mark.parametrize("name, prec", [("CoOp", "fp16"), ("CoCoOp", "amp")])
def test_precision_is_read_from_the_published_node(root, tmp_path, name, prec):
    node = f"TRAINER.{name.upper()}"
    trainer = make(name, root, tmp_path, f"{node}.PREC", prec, f"{node}.PREC_ON_CPU", "True")
    assert trainer.precision == prec and (trainer.scaler is not None) == (prec == "amp")
    assert trainer.model.clip_model.dtype == (torch.float16 if prec == "fp16" else torch.float32)
    trainer.batch_idx, trainer.num_batches = 0, 2
    before = trainer.model.learner.ctx.detach().clone()
    loss = trainer.forward_backward(next(iter(trainer.train_loader_x)))["loss"]
    assert loss == loss and trainer.model.learner.ctx.dtype == torch.float32  # finite, trainables stay fp32
    # A step was taken, or (amp) skipped on an fp16 overflow of the scaled gradients, as GradScaler does.
    skipped = prec == "amp" and trainer.scaler.get_scale() < 2.0 ** 16
    assert skipped or not torch.equal(before, trainer.model.learner.ctx.detach())


# The published configs (KaiyangZhou/CoOp configs/trainers/CoOp/*.yaml, ViT ones): epochs, context
# initialisation and backbone; every one: SGD, LR 0.002, batch 32 (test 100), cosine, 1 warmup epoch.
PUBLISHED = {"vit_b16": (200, "", "ViT-B/16"), "vit_b16_ep50": (50, "", "ViT-B/16"),
             "vit_b16_ep100": (100, "", "ViT-B/16"), "vit_b16_ctxv1": (200, "a photo of a", "ViT-B/16"),
             "vit_b16_ep50_ctxv1": (50, "a photo of a", "ViT-B/16"),
             "vit_b16_ep100_ctxv1": (100, "a photo of a", "ViT-B/16"), "vit_b32": (200, "", "ViT-B/32"),
             "vit_b32_ep50": (50, "", "ViT-B/32")}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_configs_hold_the_published_values(name):
    from mmrl.config import build_parser, setup_cfg

    cfg = setup_cfg(build_parser().parse_args(["--trainer", "CoOp", "--config-file",
                                               f"configs/trainers/CoOp/{name}.yaml"]))
    o = cfg.OPTIM
    assert (o.NAME, o.LR, o.LR_SCHEDULER, o.WARMUP_EPOCH, o.WARMUP_TYPE, o.WARMUP_CONS_LR) == (
        "sgd", 0.002, "cosine", 1, "constant", 1e-5)
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE, cfg.TRAIN.PRINT_FREQ) == (32, 100, 5)
    node = cfg.TRAINER.COOP
    assert (o.MAX_EPOCH, node.CTX_INIT, cfg.MODEL.BACKBONE.NAME) == PUBLISHED[name]
    assert (node.N_CTX, node.CSC, node.CLASS_TOKEN_POSITION, node.PREC) == (16, False, "end", "fp16")
