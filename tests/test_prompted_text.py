"""The prompted text tower (mmrl/model/prompted_text.py) equals the published code's plain 77-position
forward (tests/reference_prompting.py), for every prompt layout the trainers use: a context shared by
the classes (with and without deep prompts), one per class, the class name in the middle or front, and
one context per image (chunked)."""
import pytest
import torch

from mmrl.model.clip_loader import tokenize
from mmrl.model.prompted_text import PromptedText, class_token_layout, context_init, context_prompts
from tests import reference_prompting as ref

# Names of different token lengths: the longest sets where our tower stops.
CLASSNAMES = ["dog", "red_double_decker bus", "Annual Crop Land", "cat", "sea turtle"]
TOL = 1e-5


def close(a, b):
    scale = b.abs().max()
    assert (a - b).abs().max() <= TOL * scale, float((a - b).abs().max() / scale)


def setup(mini_clip, n_ctx=4, ctx_init="", n_cls=None, seed=0):
    ctx, prefix = context_init(mini_clip, n_ctx, ctx_init, n_cls, generator=torch.Generator().manual_seed(seed))
    prompts = context_prompts(prefix, CLASSNAMES)
    return ctx, prompts, ctx.shape[-2]


def deep_prompts(mini_clip, n, depth, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [0.02 * torch.randn(n, mini_clip.ln_final.weight.shape[0], generator=g) for _ in range(depth)]


@pytest.mark.parametrize("depth", [0, 1, 8])
def test_shared_context_equals_the_plain_forward(mini_clip, depth):
    ctx, prompts, n = setup(mini_clip)
    deep = deep_prompts(mini_clip, n, depth)
    encoder = PromptedText(mini_clip, prompts, n)
    theirs = ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, ctx), tokenize(prompts), deep)
    with torch.no_grad():
        close(encoder(ctx, deep), theirs)
        close(encoder.whole_sequence(ctx, deep), theirs)
    # The prompts differ in length, and the context moves the features well beyond the tolerance.
    assert len(encoder.class_groups().groups) > 1
    plain = ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, torch.zeros_like(ctx)),
                              tokenize(prompts))
    assert (plain - theirs).abs().max() > 1e-2 * theirs.abs().max()


def test_gradients_of_the_context_equal_the_plain_forward(mini_clip):
    ctx, prompts, n = setup(mini_clip)
    deep = deep_prompts(mini_clip, n, 3)
    encoder = PromptedText(mini_clip, prompts, n)
    grads = []
    for fn in (lambda c, d: encoder(c, d),
               lambda c, d: ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, c),
                                              tokenize(prompts), d)):
        c = ctx.clone().requires_grad_(True)
        d = [p.clone().requires_grad_(True) for p in deep]
        fn(c, d).square().sum().backward()
        grads.append([c.grad] + [p.grad for p in d])
    for a, b in zip(*grads):
        close(a, b)


def test_class_specific_contexts_equal_the_plain_forward(mini_clip):
    ctx, prompts, n = setup(mini_clip, n_ctx=3, n_cls=len(CLASSNAMES))
    assert ctx.shape == (len(CLASSNAMES), 3, mini_clip.ln_final.weight.shape[0])
    encoder = PromptedText(mini_clip, prompts, n)
    theirs = ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, ctx), tokenize(prompts))
    with torch.no_grad():
        close(encoder(ctx), theirs)


@pytest.mark.parametrize("position", ["middle", "front"])
@pytest.mark.parametrize("per_class", [False, True])
def test_class_token_in_the_middle_or_front_equals_the_plain_forward(mini_clip, position, per_class):
    ctx, prompts, n = setup(mini_clip, n_ctx=4, n_cls=len(CLASSNAMES) if per_class else None)
    tokens, ctx_index = class_token_layout(prompts, CLASSNAMES, n, position)
    encoder = PromptedText(mini_clip, prompts, n, ctx_index=ctx_index, tokens=tokens)
    name_lens = [len(tokenize([c.replace("_", " ")])[0].nonzero()) - 2 for c in CLASSNAMES]
    theirs = ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, ctx, position, name_lens),
                               tokenize(prompts))
    with torch.no_grad():
        close(encoder(ctx), theirs)


@pytest.mark.parametrize("depth", [0, 2])
def test_per_image_contexts_equal_the_image_by_image_forward(mini_clip, depth):
    ctx, prompts, n = setup(mini_clip)
    g = torch.Generator().manual_seed(3)
    per_image = ctx + 0.05 * torch.randn(5, 1, ctx.shape[-1], generator=g)  # [B, n_ctx, D]
    deep = deep_prompts(mini_clip, n, depth)
    # A budget of 2 images' class positions per chunk: 5 images run in 3 chunks.
    encoder = PromptedText(mini_clip, prompts, n)
    encoder.max_tokens = 2 * encoder.class_groups().n_tokens
    with torch.no_grad():
        ours = encoder.per_image(per_image, deep)
        theirs = torch.stack([ref.text_features(mini_clip, ref.prompt_embeddings(mini_clip, prompts, n, c),
                                                tokenize(prompts), deep) for c in per_image])
    assert ours.shape == (5, len(CLASSNAMES), mini_clip.text_projection.shape[1])
    close(ours, theirs)


def test_context_from_a_phrase_is_its_token_embeddings(mini_clip):
    ctx, prompts, n = setup(mini_clip, n_ctx=16, ctx_init="a_photo of a")
    assert n == 4 and prompts[1] == "a photo of a red double decker bus."
    phrase = tokenize(["a photo of a"])[0, 1:5]
    assert torch.equal(ctx, mini_clip.token_embedding.weight[phrase])
    ours = PromptedText(mini_clip, prompts, n)
    with torch.no_grad():
        # With its own embeddings as the context, the prompt is the plain prompt: CLIP's own features.
        close(ours(ctx), mini_clip.encode_text(tokenize(prompts)))


def test_bad_contexts_are_refused(mini_clip):
    ctx, prompts, n = setup(mini_clip)
    encoder = PromptedText(mini_clip, prompts, n)
    with pytest.raises(ValueError, match="expected 4 vectors"):
        encoder(ctx[:3])
    with pytest.raises(ValueError, match="deep prompts"):
        encoder(ctx, deep_prompts(mini_clip, n, 12))
