import pytest
import torch

from mmrl.model.clip_loader import tokenize
from mmrl.model.towers import ImageTower, TextTower, causal_mask, run_block, run_mlp, splice_tokens
from tests import reference_forward

K = 3
PROMPTS = ["a photo of a dog.", "a photo of a tiny red car.", "cat"]


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tokens():
    return tokenize(PROMPTS)


def test_zero_tokens_equal_clip_encoders(mini_clip, images, tokens):
    with torch.no_grad():
        image = ImageTower(mini_clip.visual).encode(images)
        text = TextTower(mini_clip).encode(tokens)
        assert torch.allclose(image, mini_clip.encode_image(images), atol=1e-6, rtol=0)
        assert torch.allclose(text, mini_clip.encode_text(tokens), atol=1e-6, rtol=0)


def test_run_block_equals_block_forward(mini_clip):
    x = torch.randn(77, 2, 128)
    block = mini_clip.transformer.resblocks[4]
    with torch.no_grad():
        assert torch.allclose(run_block(block, x, causal_mask(77, x.dtype, x.device)), block(x), atol=1e-6, rtol=0)
        vblock = mini_clip.visual.transformer.resblocks[0]
        assert torch.allclose(run_block(vblock, x[:17], None), vblock(x[:17]), atol=1e-6, rtol=0)


def test_mlp_output_is_clips_bit_for_bit_and_its_gradient_autograds(mini_clip):
    block = mini_clip.visual.transformer.resblocks[2]
    h = torch.randn(17, 3, 128, generator=torch.Generator().manual_seed(0), requires_grad=True)
    got = run_mlp(block, h)
    want = block.mlp(h)
    # The forward arithmetic is QuickGELU's own, so the outputs are equal, not close.
    assert torch.equal(got, want)
    g = torch.randn(got.shape, generator=torch.Generator().manual_seed(1))
    (grad_got,) = torch.autograd.grad(got, h, g)
    (grad_want,) = torch.autograd.grad(want, h, g)
    assert torch.allclose(grad_got, grad_want, atol=1e-6, rtol=1e-5)
    # What backward keeps of the activation: one hidden-sized tensor (1.702 x), not x and its sigmoid.
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.shape) or t, lambda t: t):
        run_mlp(block, h)
    assert kept.count(torch.Size([17, 3, 512])) == 1
    with torch.no_grad():
        assert torch.equal(run_mlp(block, h), block.mlp(h))


def test_causal_mask_values_and_cache():
    m = causal_mask(3, torch.float32, torch.device("cpu"))
    inf = float("-inf")
    assert m.tolist() == [[0.0, inf, inf], [0.0, 0.0, inf], [0.0, 0.0, 0.0]]
    assert causal_mask(3, torch.float32, torch.device("cpu")) is m
    assert causal_mask(3, torch.float64, torch.device("cpu")).dtype == torch.float64


@pytest.mark.parametrize("layers", [[6, 7, 8, 9, 10, 11, 12], [3, 5, 9]])
def test_image_tower_with_tokens_equals_plain_recomputation(mini_clip, images, layers):
    g = torch.Generator().manual_seed(1)
    toks = [torch.randn(K, 128, generator=g) for _ in layers]
    tower = ImageTower(mini_clip.visual)
    with torch.no_grad():
        x = tower.run(tower.embed(images), 0, 12, {n - 1: t for n, t in zip(layers, toks)})
        assert x.shape == (1 + K + 16, 2, 128)
        want_c, want_r = reference_forward.image_features(mini_clip.visual, images, layers, toks, K, mini_clip.visual.proj)
        assert torch.allclose(tower.cls_feature(x), want_c, atol=1e-5, rtol=0)
        assert torch.allclose(tower.token_feature(x, K, mini_clip.visual.proj), want_r, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [[6, 7, 8, 9, 10, 11, 12], [3, 5, 9]])
def test_text_tower_with_tokens_equals_plain_recomputation(mini_clip, tokens, layers):
    g = torch.Generator().manual_seed(2)
    toks = [torch.randn(K, 128, generator=g) for _ in layers]
    tower = TextTower(mini_clip)
    clip_mask = mini_clip.transformer.resblocks[0].attn_mask
    lengths = []
    with torch.no_grad():
        # split at the first insertion block, as the model caches the lower part
        lower = tower.run(tower.embed(tokens), 0, layers[0] - 1)
        x = tower.run(lower, layers[0] - 1, 12, {n - 1: t for n, t in zip(layers, toks)})
        got = tower.feature(x, tokens.argmax(dim=-1), shift=K)
        want = reference_forward.text_features(mini_clip, tokens, layers, toks, K, seen_lengths=lengths)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
    j = layers[0]
    # The reference runs 77 (+K) positions; ours stop at the last EOT, which the equality above shows
    # changes nothing.
    assert lengths == [77] * (j - 1) + [77 + K] * (12 - j + 1)
    length = int(tokens.argmax(dim=-1).max()) + 1
    assert length < 20
    assert x.shape == (length + K, 3, 128)
    # CLIP's own blocks are untouched: same mask object, still 77 long
    assert mini_clip.transformer.resblocks[0].attn_mask is clip_mask and clip_mask.shape == (77, 77)


def test_eot_feature_reads_shifted_position(mini_clip):
    tower = TextTower(mini_clip)
    x = torch.zeros(77 + K, 2, 128)
    x[4 + K, 0] = torch.arange(128.0)
    x[9 + K, 1] = -torch.arange(128.0)
    eot = torch.tensor([4, 9])
    with torch.no_grad():
        f = tower.feature(x, eot, shift=K)
        want = mini_clip.ln_final(torch.stack([x[4 + K, 0], x[9 + K, 1]])) @ mini_clip.text_projection
    assert torch.equal(f, want)


def test_splice_modes():
    x = torch.arange(5.0).view(5, 1, 1).expand(5, 2, 1)  # positions 0..4, batch 2, width 1
    t = torch.tensor([[10.0], [20.0]])
    assert splice_tokens(x, t, "insert")[:, 0, 0].tolist() == [0, 10, 20, 1, 2, 3, 4]
    assert splice_tokens(x, t, "replace")[:, 1, 0].tolist() == [0, 10, 20, 3, 4]
    assert splice_tokens(x, t, "blend", beta=0.25)[:, 0, 0].tolist() == [0, 3.25, 6.5, 3, 4]
    with pytest.raises(ValueError, match="unknown splice mode 'append'"):
        splice_tokens(x, t, "append")


def test_wrong_image_size_names_both_sizes(mini_clip):
    with pytest.raises(ValueError, match=r"expects images of shape \[B, 3, 32, 32\], got \[1, 3, 224, 224\]"):
        ImageTower(mini_clip.visual).embed(torch.zeros(1, 3, 224, 224))


def test_block_range_is_checked(mini_clip):
    with pytest.raises(ValueError, match=r"block range \[0, 13\) is outside 0..12"):
        ImageTower(mini_clip.visual).run(torch.zeros(17, 1, 128), 0, 13)


def test_zero_shot_model_equals_clip_logits(mini_clip, images):
    from mmrl.model.zeroshot import ZeroShotCLIP

    with torch.no_grad():
        logits = ZeroShotCLIP(mini_clip, PROMPTS)(images)
        want, _ = mini_clip(images, tokenize(PROMPTS))
    assert logits.shape == (2, 3)
    assert torch.allclose(logits, want, atol=1e-4, rtol=0)
