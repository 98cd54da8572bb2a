"""FLOPs of a training step (mmrl.model.flops): the counter's figures against the analytical count of
known shapes, and the parts of a step against the count of the whole step."""
import pytest
import torch
import torch.nn.functional as F

from mmrl.model.flops import IMAGE, LEARNER, LOSS, PARTS, TEXT, ZERO_SHOT, counted, step_flops
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import RepArch

PROMPTS = ["a photo of a dog.", "a cat", "a tiny red car on a road"]
LAYERS = (6, 7, 8, 9, 10, 11, 12)


def test_a_product_counts_two_flops_per_multiply_add():
    a, b = torch.randn(7, 5), torch.randn(5, 3)
    assert counted(lambda: a @ b)[1] == 2 * 7 * 5 * 3


def test_cpu_attention_is_counted_forward_and_backward():
    q, k, v = (torch.randn(2, 3, 11, 8, requires_grad=True) for _ in range(3))
    mask = torch.zeros(11, 11)  # a mask keeps SDPA on the CPU flash kernel, as in the towers
    out, forward = counted(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    # q k^T and p v: two batched products of 2 x 3 x 11 x 11 x 8 multiply-adds.
    assert forward == 2 * 2 * (2 * 3 * 11 * 11 * 8)
    _, backward = counted(lambda: out.sum().backward())
    # torch's formula: five products (q k^T again, dp = do v^T, dv = p^T do, dq = ds k, dk = ds^T q).
    assert backward == 5 * forward // 2


IMAGES, LABELS = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2])


@pytest.fixture(scope="module")
def one_thread():
    # The miniature model's products are tiny: one thread is faster, and far faster on a busy machine
    # (waiting threads spin).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[False, True], ids=["kept", "recomputed"])
def counts(request, mini_clip, one_thread):
    """(model, FLOPs by part, FLOPs of the uncut step, the learner's gradients from both)."""
    torch.manual_seed(0)
    arch = RepArch.from_clip(mini_clip, "MMRL", 5, LAYERS, 32)
    model = RepresentationCLIP(mini_clip, PROMPTS, arch, alpha=0.7, recompute=request.param)
    flops = step_flops(model, IMAGES, LABELS, reg_weight=1.0)
    cut = [p.grad.clone() for p in model.learner.parameters()]
    model.learner.zero_grad(set_to_none=True)
    _, total = counted(lambda: model.forward_train(IMAGES, LABELS, reg_weight=1.0).loss.backward())
    whole = [p.grad.clone() for p in model.learner.parameters()]
    return model, flops, total, cut, whole


def test_image_forward_equals_the_analytical_count(counts, mini_clip):
    _, flops, _, _, _ = counts
    visual = mini_clip.visual
    b, width, patch, d = 2, visual.conv1.weight.shape[0], visual.conv1.kernel_size[0], visual.proj.shape[1]
    patches, k, j = (32 // patch) ** 2, 5, LAYERS[0] - 1

    def block(length: int) -> int:
        tokens = b * length
        # in-projection (3 D), out-projection (D), MLP (4 D and back), then q k^T and p v.
        return 2 * tokens * width * width * (3 + 1 + 4 + 4) + 2 * 2 * b * length * length * width

    conv = 2 * b * patches * (3 * patch * patch) * width
    lower = j * block(1 + patches)
    upper = (12 - j) * block(1 + patches + k) + 2 * (2 * b * width * d)  # class and token features
    assert flops.forward[IMAGE] == conv + lower + upper
    assert flops.forward[ZERO_SHOT] == (12 - j) * block(1 + patches) + 2 * b * width * d
    assert flops.backward[ZERO_SHOT] == 0


def test_parts_sum_to_the_whole_step(counts):
    _, flops, total, cut, whole = counts
    assert flops.total == total
    assert all(flops.forward[p] > 0 for p in PARTS)
    assert all(flops.backward[p] > 0 for p in (LEARNER, TEXT, IMAGE, LOSS))
    # The cut graph hands the learner the whole step's gradients.
    for a, b in zip(cut, whole):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
