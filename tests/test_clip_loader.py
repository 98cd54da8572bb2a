import os
import urllib.error
import urllib.request

import pytest
import torch

from mmrl.demo.clip import MINI_SPEC, build_mini_clip, build_random_clip, mini_clip_path
from mmrl.model.clip_loader import (
    CLIP_BACKBONES,
    MINI_BACKBONE,
    CLIPWeightsUnavailable,
    load_clip,
    tokenize,
)

VIT_B16_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"
)


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_local_plain_state_dict_loads_frozen_fp32_eval(mini_clip, mini_clip_file, capsys):
    model = load_clip("ViT-B/16", str(mini_clip_file))
    out = capsys.readouterr().out
    assert "Loading CLIP (backbone: ViT-B/16)" in out
    assert "CLIP precision: fp32" in out
    assert_same_weights(model, mini_clip)
    assert not model.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
    assert model.visual.input_resolution == 32 and len(model.transformer.resblocks) == 12


def test_wrapped_state_dict_loads(mini_clip, tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": mini_clip.state_dict(), "epoch": 3}, path)
    assert_same_weights(load_clip("ViT-B/16", str(path)), mini_clip)


@pytest.mark.filterwarnings("ignore")
def test_torchscript_archive_loads(mini_clip, tmp_path):
    traced = torch.jit.trace(mini_clip, (torch.zeros(1, 3, 32, 32), tokenize(["a dog."])), check_trace=False)
    path = tmp_path / "traced.pt"
    torch.jit.save(traced, str(path))
    assert_same_weights(load_clip("ViT-B/16", str(path)), mini_clip)


def test_loading_leaves_global_rng_untouched(mini_clip_file):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_clip("ViT-B/16", str(mini_clip_file))
    assert torch.equal(torch.rand(3), expected)


def test_offline_error_says_what_to_download_and_where(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CLIPWeightsUnavailable) as e:
        load_clip("ViT-B/16", download_root=str(tmp_path))
    msg = str(e.value)
    assert "'ViT-B/16'" in msg
    assert VIT_B16_URL in msg
    assert os.path.join(str(tmp_path), "ViT-B-16.pt") in msg
    assert "MODEL.BACKBONE.PATH /path/to/ViT-B-16.pt" in msg
    assert isinstance(e.value, RuntimeError)


def test_unknown_backbone_lists_available():
    with pytest.raises(ValueError, match=r"Unknown CLIP backbone 'ViT-Z/99' \(MODEL.BACKBONE.NAME\); available: \[.*'ViT-B/16'.*'mini-random'\]"):
        load_clip("ViT-Z/99")
    assert "ViT-B/16" in CLIP_BACKBONES and MINI_BACKBONE in CLIP_BACKBONES


def test_file_that_is_not_clip_is_named(tmp_path):
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not CLIP weights"):
        load_clip("ViT-B/16", str(garbage))
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"other.pt is not CLIP ViT weights: missing key\(s\) \['visual.conv1.weight'"):
        load_clip("ViT-B/16", str(other))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt does not exist; check MODEL.BACKBONE.PATH"):
        load_clip("ViT-B/16", str(tmp_path / "nothere.pt"))


def test_fp16_halves_what_clip_halves_also_on_cpu(mini_clip_file):
    model = load_clip("ViT-B/16", str(mini_clip_file), fp16=True)
    assert model.visual.conv1.weight.dtype == torch.float16
    assert model.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float16
    assert model.text_projection.dtype == torch.float16
    # CLIP's LayerNorm computes in fp32 and needs fp32 weights.
    assert model.ln_final.weight.dtype == torch.float32


def test_mini_backbone_is_cached_and_announced_as_random(mini_clip, capsys):
    path = mini_clip_path()
    assert str(path).startswith(os.environ["MMRL_CACHE"])
    model = load_clip(MINI_BACKBONE)
    assert path.is_file()
    out = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in out and "say nothing about real CLIP" in out
    assert_same_weights(model, mini_clip)
    load_clip(MINI_BACKBONE)  # reuses the file and warns again
    assert "RANDOMLY INITIALISED" in capsys.readouterr().out


def test_mini_clip_is_deterministic_and_independent_of_global_rng():
    torch.manual_seed(0)
    a = build_mini_clip(0)
    torch.manual_seed(99)
    b = build_mini_clip(0)
    assert_same_weights(a, b)
    c = build_mini_clip(1)
    assert not torch.equal(a.visual.proj, c.visual.proj)
    assert a.visual.proj.shape == (MINI_SPEC["vision_width"], MINI_SPEC["embed_dim"])


def test_random_clip_rejects_head_count_that_would_not_reload():
    spec = dict(MINI_SPEC, transformer_heads=4)
    with pytest.raises(ValueError, match="transformer_heads=4 must equal transformer_width // 64 = 2"):
        build_random_clip(spec)


def test_tokenize_shape_dtype_and_eot():
    tokens = tokenize(["a photo of a dog.", "cat"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[:, 0].tolist() == [49406, 49406]
    assert tokens.argmax(dim=-1).tolist() == [7, 2]
    assert tokens[1, 2].item() == 49407


def test_offline_with_corrupt_cached_file_says_so(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (tmp_path / "ViT-B-16.pt").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="SHA256 checksum does not match"):
        with pytest.raises(CLIPWeightsUnavailable, match="ViT-B-16.pt does not match the expected checksum"):
            load_clip("ViT-B/16", download_root=str(tmp_path))
    assert (tmp_path / "ViT-B-16.pt").read_bytes() == b"truncated"  # the user's file is left alone
