import pytest
import torch
import torch.nn.functional as F

from mmrl.model.clip_loader import tokenize
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import MMRLLearner, RepArch, build_learner
from mmrl.model.towers import ImageTower, TextTower

PROMPTS = ["a photo of a dog.", "a photo of a cat.", "a photo of a car."]


def make(mini_clip, layers=(3, 5, 9), k=3, rep_dim=16, alpha=0.7, seed=0):
    torch.manual_seed(seed)
    arch = RepArch.from_clip(mini_clip, "MMRL", k, layers, rep_dim)
    return RepresentationCLIP(mini_clip, PROMPTS, arch, alpha=alpha)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_only_the_learner_trains(mini_clip):
    model = make(mini_clip)
    learner_params = {id(p) for p in model.learner.parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == learner_params
    assert not any(p.requires_grad for p in mini_clip.parameters())
    learner = model.learner
    expected = [learner.rep_tokens, learner.proj_rep]
    for maps in (learner.to_visual, learner.to_text):
        for linear in maps:
            expected += [linear.weight, linear.bias]
    assert {id(p) for p in expected} == learner_params
    # the CLIP is not part of what a checkpoint holds
    assert not any(k.startswith("clip") for k in model.trainable_state_dict())


def test_learner_shapes_and_identical_initial_maps(mini_clip):
    model = make(mini_clip, k=4, rep_dim=24)
    learner = model.learner
    assert learner.rep_tokens.shape == (4, 24)
    assert learner.proj_rep.shape == (128, 64)
    assert len(learner.to_visual) == len(learner.to_text) == 3
    for maps in (learner.to_visual, learner.to_text):
        for linear in maps[1:]:
            assert torch.equal(linear.weight, maps[0].weight) and torch.equal(linear.bias, maps[0].bias)
            assert linear.weight is not maps[0].weight
    text, visual = learner()
    assert [t.shape for t in text] == [(4, 128)] * 3
    assert [t.shape for t in visual] == [(4, 128)] * 3


def test_frozen_caches_match_clip(mini_clip):
    model = make(mini_clip)
    tokens = tokenize(PROMPTS)
    with torch.no_grad():
        w_zs = F.normalize(mini_clip.encode_text(tokens), dim=-1)
        tower = TextTower(mini_clip)
        lower = tower.run(tower.embed(tokens), 0, 2)
    assert torch.allclose(model.w_zs, w_zs, atol=1e-6, rtol=0)
    assert model.text_lower.shape == (int(tokens.argmax(-1).max()) + 1, 3, 128)
    assert torch.equal(model.text_lower, lower)
    assert not model.text_lower.requires_grad


def test_text_features_equal_tower_with_learner_tokens(mini_clip):
    model = make(mini_clip)
    text_tokens, _ = model.learner()
    tower = TextTower(mini_clip)
    tokens = tokenize(PROMPTS)
    with torch.no_grad():
        x = tower.run(tower.embed(tokens), 0, 12, {2: text_tokens[0], 4: text_tokens[1], 8: text_tokens[2]})
        want = F.normalize(tower.feature(x, tokens.argmax(-1), shift=3), dim=-1)
        assert torch.allclose(model.text_features(), want, atol=1e-6, rtol=0)


def test_forward_train_is_consistent(mini_clip, images):
    model = make(mini_clip, alpha=0.7)
    labels = torch.tensor([2, 0])
    out = model.forward_train(images, labels, reg_weight=3.0)
    with torch.no_grad():
        w = model.text_features()
        f_c, f_r = model.image_features(images)
        f_zs = F.normalize(mini_clip.encode_image(images), dim=-1)
    assert torch.allclose(out.logits_c, 100 * f_c @ w.t(), atol=1e-4, rtol=0)
    assert torch.allclose(out.logits_r, 100 * f_r @ w.t(), atol=1e-4, rtol=0)
    assert torch.allclose(out.logits_fused, 0.7 * out.logits_c + 0.3 * out.logits_r, atol=1e-5, rtol=0)
    assert torch.allclose(out.image_features_c, f_c, atol=1e-6, rtol=0)
    assert torch.allclose(out.text_features, w, atol=1e-6, rtol=0)
    ce = 0.7 * F.cross_entropy(out.logits_c, labels) + 0.3 * F.cross_entropy(out.logits_r, labels)
    reg = 3.0 * (1 - F.cosine_similarity(f_c, f_zs).mean()) + 3.0 * (1 - F.cosine_similarity(w, model.w_zs).mean())
    assert out.loss.item() == pytest.approx((ce + reg).item(), abs=1e-5)
    logits = model.logits(images, w)
    assert logits.loss is None
    for name in ("logits_c", "logits_r", "logits_fused", "image_features_r"):
        assert torch.allclose(getattr(logits, name), getattr(out, name), atol=1e-4, rtol=0), name
    assert torch.equal(logits.scored("fused"), logits.logits_fused) and torch.equal(logits.scored("class"), logits.logits_c)
    with pytest.raises(ValueError, match="'fused' or 'class'"):
        logits.scored("rep")


def test_every_learner_tensor_gets_a_gradient(mini_clip, images):
    model = make(mini_clip)
    model.forward_train(images, torch.tensor([0, 1]), reg_weight=1.0).loss.backward()
    for name, p in model.learner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in mini_clip.parameters())


def test_recomputing_blocks_gives_the_same_loss_and_gradients(mini_clip, images):
    labels = torch.tensor([0, 2])
    grads = []
    for recompute in (False, True):
        model = make(mini_clip)
        model.recompute = recompute
        loss = model.forward_train(images, labels, reg_weight=1.0).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.learner.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = grads
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5), name


def test_image_features_equal_tower_with_learner_tokens(mini_clip, images):
    model = make(mini_clip, layers=(6, 7, 8, 9, 10, 11, 12))
    _, visual = model.learner()
    tower = ImageTower(mini_clip.visual)
    with torch.no_grad():
        x = tower.run(tower.embed(images), 0, 12, {i + 5: t for i, t in enumerate(visual)})
        f_c, f_r = model.image_features(images)
        assert torch.allclose(f_c, F.normalize(tower.cls_feature(x), dim=-1), atol=1e-6, rtol=0)
        want_r = F.normalize(tower.token_feature(x, 3, model.learner.proj_rep), dim=-1)
        assert torch.allclose(f_r, want_r, atol=1e-6, rtol=0)


def test_set_prompts_recomputes_caches(mini_clip):
    model = make(mini_clip)
    model.set_prompts(["a", "b", "c", "d", "e"])
    assert model.n_classes == 5 and model.text_lower.shape[1:] == (5, 128) and model.w_zs.shape == (5, 64)
    with torch.no_grad():
        assert model.text_features().shape == (5, 64)
    with pytest.raises(ValueError, match="at least one class prompt"):
        model.set_prompts([])


def test_trainable_state_dict_round_trip(mini_clip, images):
    a = make(mini_clip, seed=1)
    b = make(mini_clip, seed=2)
    with torch.no_grad():
        before = b.logits(images, b.text_features()).logits_fused
        b.load_trainable_state_dict(a.trainable_state_dict())
        after = a.logits(images, a.text_features()).logits_fused
        assert torch.equal(b.logits(images, b.text_features()).logits_fused, after)
        assert not torch.equal(before, after)


@pytest.mark.parametrize("other", [dict(k=4), dict(rep_dim=8)])
def test_mismatched_state_dict_names_key_and_shapes(mini_clip, other):
    model = make(mini_clip)
    foreign = make(mini_clip, **other).trainable_state_dict()
    want = r"\[4, 16\].*\[3, 16\]" if "k" in other else r"\[3, 8\].*\[3, 16\]"
    with pytest.raises(ValueError, match=r"checkpoint key 'rep_tokens' has shape " + want + ".*another architecture or backbone"):
        model.load_trainable_state_dict(foreign)
    partial = dict(model.trainable_state_dict())
    del partial["proj_rep"]
    with pytest.raises(ValueError, match="checkpoint lacks key 'proj_rep'"):
        model.load_trainable_state_dict(partial)


def test_rep_arch_validation_and_round_trip(mini_clip):
    base = dict(variant="MMRL", n_tokens=5, rep_dim=512, visual_width=768, text_width=512, embed_dim=512)
    with pytest.raises(ValueError, match="REP_LAYERS is empty"):
        RepArch(rep_layers=(), **base)
    with pytest.raises(ValueError, match=r"REP_LAYERS \[7, 6\] must be sorted and without repeats"):
        RepArch(rep_layers=(7, 6), **base)
    with pytest.raises(ValueError, match=r"REP_LAYERS \[6, 6\] must be sorted"):
        RepArch(rep_layers=(6, 6), **base)
    with pytest.raises(ValueError, match="1-based, 0 is invalid"):
        RepArch(rep_layers=(0, 1), **base)
    with pytest.raises(ValueError, match=r"REP_LAYERS \[6, 13\] exceed the backbone's 12 blocks"):
        RepArch.from_clip(mini_clip, "MMRL", 5, [6, 13], 16)
    with pytest.raises(ValueError, match="unknown representation variant 'MaPLe'"):
        RepArch(**dict(base, variant="MaPLe"), rep_layers=(6,))
    with pytest.raises(ValueError, match="TRAINER.MMRLpp.PROJ_LORA_DIM must be at least 1"):
        RepArch(**dict(base, variant="MMRLpp"), rep_layers=(6,))
    with pytest.raises(ValueError, match="TRAINER.MMRL.N_REP_TOKENS must be at least 1, got 0"):
        RepArch(**dict(base, n_tokens=0), rep_layers=(6,))
    arch = RepArch(rep_layers=[6, 7], **base)
    assert arch.rep_layers == (6, 7)
    assert arch.to_dict()["rep_layers"] == [6, 7]
    assert RepArch.from_dict(arch.to_dict()) == arch
    with pytest.raises(ValueError, match=r"unknown RepArch key\(s\) \['depth'\]"):
        RepArch.from_dict(dict(arch.to_dict(), depth=3))


def test_build_learner_checks_backbone_widths(mini_clip):
    arch = RepArch(variant="MMRL", n_tokens=5, rep_layers=(6,), rep_dim=512, visual_width=768, text_width=512, embed_dim=512)
    with pytest.raises(ValueError, match=r"widths \(visual 768, text 512, embed 512\) do not match the CLIP backbone's \(visual 128, text 128, embed 64\)"):
        build_learner(arch, mini_clip)
    assert isinstance(build_learner(RepArch.from_clip(mini_clip, "MMRL", 2, [6], 8), mini_clip), MMRLLearner)


def test_learners_declare_their_own_fields():
    base = dict(n_tokens=5, rep_layers=[6], rep_dim=512, visual_width=768, text_width=512, embed_dim=512)
    mmrl = RepArch(variant="MMRL", **base)
    assert "proj_lora_dim" not in mmrl.to_dict()
    with pytest.raises(ValueError, match=r"unknown RepArch key\(s\) \['proj_lora_dim'\] for MMRL"):
        RepArch(variant="MMRL", proj_lora_dim=4, **base)
    # Checkpoints written when every arch recorded every variant's fields (0 where unused) still read.
    assert RepArch.from_dict(dict(base, variant="MMRL", proj_lora_dim=0, res_lora_dim=0)) == mmrl
    pp = RepArch.from_dict(dict(base, variant="MMRLpp", proj_lora_dim=64, res_lora_dim=4))
    assert (pp.proj_lora_dim, pp.res_lora_dim) == (64, 4) and RepArch.from_dict(pp.to_dict()) == pp
    assert pp.key("res_lora_dim") == "TRAINER.MMRLpp.RES_LORA_DIM"


def test_model_package_compares_no_method_name():
    """The model code asks the learner classes; it never branches on a variant's name."""
    import ast
    import pathlib

    from mmrl.model.representation import LEARNER_REGISTRY

    names = set(LEARNER_REGISTRY.registered_names())
    hits = []
    for path in (pathlib.Path(__file__).parents[1] / "mmrl" / "model").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                hits += [f"{path}:{node.lineno}" for c in consts if c in names]
    assert names >= {"MMRL", "MMRLpp"} and not hits
