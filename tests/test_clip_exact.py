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


# -- a local file that is one of open_clip's releases gets that release's activation, whatever its name -----
def _openai_entry(monkeypatch, sha256: str) -> None:
    """Point the ViT-B-32 ``openai`` entry of open_clip's table at a file with ``sha256`` (as if it were OpenAI's)."""
    from open_clip import pretrained

    entry = dict(pretrained._PRETRAINED["ViT-B-32"]["openai"])
    entry["url"] = f"https://openaipublic.azureedge.net/clip/models/{sha256}/ViT-B-32.pt"
    monkeypatch.setitem(pretrained._PRETRAINED["ViT-B-32"], "openai", entry)


def test_the_release_table_lookup_reads_open_clips_real_entries():
    from detectors.blocks.clip_releases import release_table, url_sha256

    table = {(arch, tag): cfg for arch, tag, cfg in release_table()}
    vit_b32 = table[("ViT-B-32", "openai")]
    assert url_sha256(vit_b32["url"]) == "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
    assert vit_b32["quick_gelu"] is True and vit_b32["hf_hub"].startswith("timm/vit_base_patch32_clip_224.openai")
    yfcc = table[("RN50", "yfcc15m")]  # open_clip's own early release: the 8-digit prefix in the file name
    assert url_sha256(yfcc["url"]) == "455df137" and yfcc["quick_gelu"] is True
    with_hash = [key for key, cfg in table.items() if url_sha256(cfg.get("url") or "")]
    assert len(with_hash) >= 30 and all(table[key].get("quick_gelu") for key in with_hash if key[1] == "openai")


def test_a_state_dict_with_an_openai_sha256_is_built_with_quickgelu_whatever_the_name(reference, tmp_path,
                                                                                        monkeypatch):
    from detectors.blocks.clip_releases import file_sha256

    model, _, _ = reference
    path = tmp_path / "renamed_weights.bin"
    torch.save(model.state_dict(), path)
    plain = build_backbone(f"open_clip:ViT-B-32@{path}")
    assert not _quick(plain) and plain.build_record["activation_from"].startswith("architecture name")
    _openai_entry(monkeypatch, file_sha256(str(path)))
    bb = build_backbone(f"open_clip:ViT-B-32@{path}")
    _check(bb, reference)
    assert bb.build_record == {"spec": f"open_clip:ViT-B-32@{path}", "library": "open_clip",
                               "pretrained": str(path), "activation": "quick_gelu",
                               "activation_from": "sha256 of open_clip's ViT-B-32@openai"}


def test_a_file_in_a_hub_cache_of_an_openai_repo_is_built_with_quickgelu(reference, tmp_path):
    model, _, _ = reference
    snapshot = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    torch.save(model.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    bb = build_backbone(f"open_clip:ViT-B-32@{snapshot / 'open_clip_pytorch_model.bin'}")
    _check(bb, reference)
    assert bb.build_record["activation_from"] == "hf_hub of open_clip's ViT-B-32@openai"


def test_a_gelu_release_named_quickgelu_is_refused(tmp_path, monkeypatch):
    import open_clip
    from open_clip import pretrained

    from detectors.blocks.clip_releases import file_sha256

    path = tmp_path / "laion.bin"
    torch.save(open_clip.create_model("ViT-B-16", pretrained=None).state_dict(), path)
    entry = dict(pretrained._PRETRAINED["ViT-B-16"]["laion400m_e31"])  # a GELU release with a hash in its url
    entry["url"] = f"https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/x-{file_sha256(str(path))[:8]}.pt"
    monkeypatch.setitem(pretrained._PRETRAINED["ViT-B-16"], "laion400m_e31", entry)
    with pytest.raises(ConfigError, match=r"is open_clip's ViT-B-16@laion400m_e31 \(by its sha256\), trained with "
                                          r"GELU; name it open_clip:ViT-B-16@"):
        build_backbone(f"open_clip:ViT-B-16-quickgelu@{path}")


def test_results_record_the_activation_of_every_open_clip_backbone(tiny_protocol, tmp_path, reference, monkeypatch):
    from bench.api import run
    from bench.run.runner import RunnerOptions

    model, _, _ = reference
    path = tmp_path / "clip.bin"
    torch.save(model.state_dict(), path)
    result = run(tiny_protocol, "clip_linear", overrides={"backbone": f"open_clip:ViT-B-32@{path}", "image_size": 32},
                 out_dir=tmp_path / "runs", opts=RunnerOptions(batch_size=16), limit=4)
    (record,) = result["detector"]["built"].values()
    assert record["activation"] == "gelu" and record["activation_from"].startswith("architecture name")
