"""CoCoOp (trainers/cocoop.py, mmrl/model/coop.py) against the published code's forward, which runs
the text tower image by image (tests/reference_prompting.py): the meta-network's published shape and
key names; the same initial tensors and batches give the same SGD losses and final logits; our batched
evaluation equals the image-by-image loop; a published checkpoint loads and gives its logits."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmrl.model.coop import PromptCLIP
from mmrl.model.prompted_text import context_prompts
from tests import reference_prompting as ref
from tests.test_trainer_contract import make

CLASSNAMES = ["dog", "red_double_decker bus", "Annual Crop Land", "cat", "sea turtle"]


def close(a, b, tol=1e-5):
    assert (a - b).abs().max() <= tol * b.abs().max(), float((a - b).abs().max() / b.abs().max())


def images(n, seed):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def model(mini_clip, **kwargs):
    torch.manual_seed(2)  # the meta-net's initialisation
    return PromptCLIP(mini_clip, CLASSNAMES, n_ctx=4, meta_net=True, generator=torch.Generator().manual_seed(1),
                      **kwargs)


def test_meta_net_has_the_published_shape_and_names(mini_clip):
    m = model(mini_clip)
    vis, width = mini_clip.visual.output_dim, mini_clip.ln_final.weight.shape[0]
    shapes = {k: tuple(v.shape) for k, v in m.learner.state_dict().items()}
    assert shapes == {"ctx": (4, width), "meta_net.linear1.weight": (vis // 16, vis),
                      "meta_net.linear1.bias": (vis // 16,), "meta_net.linear2.weight": (width, vis // 16),
                      "meta_net.linear2.bias": (width,)}
    f = m.image_features(images(3, 0))
    assert m.learner.meta_net(f).shape == (3, width)
    assert m.conditioned_context(f).shape == (3, 4, width)


def test_training_losses_and_logits_equal_the_published_forward(mini_clip):
    ours = model(mini_clip, ctx_init="a photo of a")
    theirs = copy.deepcopy(ours.learner)  # the published prompt learner's ctx and meta_net, same values
    prompts = context_prompts(ours.prompt_prefix, CLASSNAMES)
    sgd = lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=5e-4)  # noqa: E731
    optim_ours, optim_ref = sgd(ours.learner.parameters()), sgd(theirs.parameters())
    g = torch.Generator().manual_seed(4)
    for step in range(3):
        x, y = images(2, 10 + step), torch.randint(0, len(CLASSNAMES), (2,), generator=g)
        _, loss = ours.forward_train(x, y)
        loss_ref = F.cross_entropy(ref.cocoop_logits(mini_clip, prompts, theirs.ctx, theirs.meta_net, x), y)
        assert abs(loss.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item())
        for optim, value in ((optim_ours, loss), (optim_ref, loss_ref)):
            optim.zero_grad()
            value.backward()
            optim.step()
    for (name, a), b in zip(ours.learner.state_dict().items(), theirs.state_dict().values()):
        close(a, b)
    assert (ours.learner.meta_net.linear2.bias - model(mini_clip).learner.meta_net.linear2.bias).abs().max() > 1e-3
    x = images(4, 20)
    with torch.no_grad():
        close(ours.logits(x), ref.cocoop_logits(mini_clip, prompts, theirs.ctx, theirs.meta_net, x))


def test_batched_evaluation_equals_the_image_by_image_loop(mini_clip):
    m = model(mini_clip)
    with torch.no_grad():
        m.learner.meta_net.linear2.bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(9))
        x = images(7, 30)
        loop = torch.cat([m.logits(x[i:i + 1]) for i in range(7)])
        m.text.max_tokens = 3 * m.text.class_groups().n_tokens  # 3 images per pass: 3 chunks
        batched = m.logits(x)
    close(batched, loop)
    assert (loop[0] - loop[1]).abs().max() > 1e-3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_a_published_checkpoint_loads_and_gives_the_published_logits(root, tmp_path):
    trainer = make("CoCoOp", root, tmp_path / "eval")
    classnames = trainer.dm.dataset.classnames
    g = torch.Generator().manual_seed(3)
    learner = trainer.model.learner
    published = {k: (0.05 * torch.randn(v.shape, generator=g)).half() for k, v in learner.state_dict().items()}
    ref.published_checkpoint(tmp_path / "run", published, 10, len(classnames), 72, 128)
    trainer.load_model(str(tmp_path / "run"), epoch=10)
    theirs = copy.deepcopy(learner)
    theirs.load_state_dict({k: v.float() for k, v in published.items()})
    x = images(5, 40)
    prompts = context_prompts(trainer.model.prompt_prefix, classnames)
    with torch.no_grad():
        close(trainer.model_inference(x), ref.cocoop_logits(trainer.model.clip_model, prompts, theirs.ctx,
                                                            theirs.meta_net, x))
    # A CoOp checkpoint (no meta-net) is refused with the key named.
    ref.published_checkpoint(tmp_path / "coop", {"ctx": published["ctx"]}, 10, len(classnames), 72, 128)
    with pytest.raises(ValueError, match="meta_net.linear1"):
        trainer.load_model(str(tmp_path / "coop"))


@pytest.mark.parametrize("name, n_ctx, ctx_init", [("vit_b16_c4_ep10_batch1", 4, ""),
                                                   ("vit_b16_c4_ep10_batch1_ctxv1", 4, "a photo of a"),
                                                   ("vit_b16_c8_ep10_batch1", 8, ""),
                                                   ("vit_b16_c16_ep10_batch1", 16, "")])
def test_configs_hold_the_published_values(name, n_ctx, ctx_init):
    # KaiyangZhou/CoOp configs/trainers/CoCoOp/*.yaml.
    from mmrl.config import build_parser, setup_cfg

    cfg = setup_cfg(build_parser().parse_args(["--trainer", "CoCoOp", "--config-file",
                                               f"configs/trainers/CoCoOp/{name}.yaml"]))
    o = cfg.OPTIM
    assert (o.NAME, o.LR, o.MAX_EPOCH, o.LR_SCHEDULER, o.WARMUP_EPOCH, o.WARMUP_CONS_LR) == (
        "sgd", 0.002, 10, "cosine", 1, 1e-5)
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE, cfg.TRAIN.PRINT_FREQ) == (1, 100, 20)
    node = cfg.TRAINER.COCOOP
    assert (node.N_CTX, node.CTX_INIT, node.PREC, cfg.MODEL.BACKBONE.NAME) == (n_ctx, ctx_init, "fp16", "ViT-B/16")
