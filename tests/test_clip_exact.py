"""Exact CLIP: OpenAI weights are built with QuickGELU on every loading path, and features match.

Small architecture (ViT-B-32), weights from a random init saved locally; the hub download is
patched to return the local file, so nothing leaves the machine.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from bench.errors import ConfigError
from detectors.blocks.backbones import build_backbone

pytestmark = pytest.mark.slow


def _quick(bb) -> bool:
    from open_clip.transformer import QuickGELU

    return all(isinstance(b.mlp.gelu, QuickGELU) for b in bb.model.transformer.resblocks)


@pytest.fixture(scope="module")
def reference():
    """A QuickGELU ViT-B-32 (as OpenAI's) with fixed random weights, and its features on fixed images."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        features = model.visual(images)
    return model, images, features


def _check(bb, reference) -> None:
    _, images, features = reference
    assert _quick(bb), "OpenAI weights must run with QuickGELU"
    with torch.no_grad():
        torch.testing.assert_close(bb.eval()(images), features, rtol=1e-4, atol=1e-4)


def test_openai_tag_builds_quickgelu_with_either_name(reference, tmp_path, monkeypatch):
    import open_clip.factory

    model, _, _ = reference
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, **kw: str(path))
    for spec in ("open_clip:ViT-B-32@openai", "open_clip:ViT-B-32-quickgelu@openai"):
        _check(build_backbone(spec), reference)


def test_openai_torchscript_file_builds_quickgelu(reference, tmp_path):
    model, _, _ = reference
    path = tmp_path / "ViT-B-32.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, OpenAI's files are not
        torch.jit.script(model).save(str(path))
    _check(build_backbone(f"open_clip:ViT-B-32@{path}"), reference)


def test_state_dict_file_is_built_as_named(reference, tmp_path):
    model, _, _ = reference
    path = tmp_path / "weights.bin"
    torch.save(model.state_dict(), path)
    _check(build_backbone(f"open_clip:ViT-B-32-quickgelu@{path}"), reference)
    assert not _quick(build_backbone(f"open_clip:ViT-B-32@{path}"))  # plain GELU as named (documented)


def test_an_activation_mismatch_warning_is_an_error(monkeypatch):
    import open_clip

    real = open_clip.create_model

    def warn_then_build(*args, **kwargs):
        warnings.warn("QuickGELU mismatch between final model config (quick_gelu=True) and pretrained tag",
                      UserWarning)
        return real("ViT-S-32", pretrained=None, force_image_size=32)

    monkeypatch.setattr(open_clip, "create_model", warn_then_build)
    with pytest.raises(ConfigError, match="QuickGELU mismatch"):
        build_backbone("open_clip:ViT-B-32@openai")
