"""Tests for detectors/blocks/backbones.py: one interface over timm ViTs/CNNs and open_clip ViTs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from detectors.blocks.backbone_loading import load_efficientnet_lite0
from detectors.blocks.backbones import LayerState, build_backbone

# Tiny random-init models at tiny sizes: each builds in well under a second.
SPECS = {
    "timm_vit": ("timm:vit_tiny_patch16_224@none", 32),
    "timm_cnn": ("timm:resnet18@none", 32),
    "open_clip_vit": ("open_clip:ViT-S-32@none", 64),
    "efficientnet_offline": ("timm:tf_efficientnet_lite0@imagenet-offline", 64),
}
# Without HF_HUB_OFFLINE set before huggingface_hub is imported, a hub request retries for ~46 s.
needs_offline = pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1",
                                   reason="set HF_HUB_OFFLINE=1 so hub requests fail at once")



@pytest.fixture(scope="module", params=list(SPECS), ids=list(SPECS))
def backbone(request):
    spec, size = SPECS[request.param]
    torch.manual_seed(0)
    bb = build_backbone(spec, image_size=size).eval()
    return bb, torch.randn(2, 3, size, size)


def _same(a: list[LayerState], b: list[LayerState]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x.global_token, y.global_token) and torch.equal(x.tokens, y.tokens) for x, y in zip(a, b))


@torch.no_grad()
def test_shapes(backbone):
    bb, x = backbone
    assert bb.forward(x).shape == (2, bb.embed_dim)
    states, embedding = bb.forward_layers(x)
    assert embedding.shape == (2, bb.embed_dim)
    assert len(states) == len(bb.layer_names) == len(bb.layer_dims)
    for state, dim in zip(states, bb.layer_dims):
        assert state.global_token.shape == (2, dim)
        assert state.tokens.ndim == 3 and state.tokens.shape[0] == 2 and state.tokens.shape[2] == dim
    if bb.kind == "vit":
        assert bb.layer_names[0] == "blocks.0"
        assert states[-1].tokens.shape[1] == 4  # 2 x 2 patches: prefix tokens are excluded
    assert bb.image_size == x.shape[-1] and len(bb.mean) == len(bb.std) == 3


@torch.no_grad()
def test_forward_layers_final_embedding_equals_forward(backbone):
    bb, x = backbone
    states, embedding = bb.forward_layers(x)
    assert torch.equal(embedding, bb.forward(x))
    some, embedding = bb.forward_layers(x, layers=[-1, 0])
    assert torch.equal(embedding, bb.forward(x))
    assert _same(some, [states[0], states[-1]])


@torch.no_grad()
def test_identity_hook_reproduces_forward_exactly(backbone):
    bb, x = backbone
    states, embedding = bb.forward_layers(x)
    seen = []
    keep, kept = bb.forward_layers(x, hook=lambda i, s: seen.append(i))
    assert seen == list(range(len(bb.layer_names)))
    assert torch.equal(kept, embedding) and _same(keep, states)
    # A returned copy goes through the write-back path, which must be exact too.
    copy, copied = bb.forward_layers(x, hook=lambda i, s: LayerState(s.global_token.clone(), s.tokens.clone()))
    assert torch.equal(copied, embedding) and _same(copy, states)


@torch.no_grad()
def test_hook_edit_reaches_later_layers(backbone):
    bb, x = backbone
    states, embedding = bb.forward_layers(x)

    def shift(i, s):
        if i != 0:
            return None
        if bb.global_in_stream:
            return LayerState(s.global_token + 1.0, s.tokens)
        return LayerState(s.global_token, s.tokens + 1.0)

    edited, out = bb.forward_layers(x, hook=shift)
    assert not torch.equal(edited[1].global_token, states[1].global_token)
    assert not torch.equal(out, embedding)
    assert bb.global_in_stream == (bb.kind == "vit")


def test_efficientnet_offline_weights_predict_espresso():
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    image = Image.fromarray(skimage_data.coffee())
    scale = 256 / min(image.size)  # resize to 256 then center-crop 224 (crop_pct 0.875)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    model = load_efficientnet_lite0(num_classes=1000).eval()
    with torch.no_grad():
        logits = model((x - 0.5) / 0.5)
    assert logits.argmax().item() == 967  # ImageNet "espresso"
    bb = build_backbone("timm:tf_efficientnet_lite0@imagenet-offline")
    assert bb.pretrained == "imagenet-offline" and bb.mean == bb.std == (0.5, 0.5, 0.5)
    assert torch.equal(bb.model.conv_stem.weight, model.conv_stem.weight)


def test_timm_local_checkpoint_loads_strictly(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18")
    save_file(source.state_dict(), tmp_path / "resnet18.safetensors")
    bb = build_backbone(f"timm:resnet18@{tmp_path / 'resnet18.safetensors'}")
    assert bb.pretrained == str(tmp_path / "resnet18.safetensors")
    assert torch.equal(bb.model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert bb.embed_dim == 512
    other = timm.create_model("resnet10t")
    save_file(other.state_dict(), tmp_path / "other.safetensors")
    with pytest.raises(ConfigError, match="could not be loaded into timm resnet18"):
        build_backbone(f"timm:resnet18@{tmp_path / 'other.safetensors'}")


def test_open_clip_local_checkpoint(tmp_path):
    import open_clip

    source = open_clip.create_model("ViT-S-32", force_image_size=64)
    torch.save(source.state_dict(), tmp_path / "clip.bin")
    bb = build_backbone(f"open_clip:ViT-S-32@{tmp_path / 'clip.bin'}", image_size=64)
    assert bb.pretrained == str(tmp_path / "clip.bin")
    assert torch.equal(bb.model.proj, source.visual.proj)


def test_missing_checkpoint_path_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone(f"timm:resnet18@{tmp_path / 'missing.safetensors'}")
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone(f"open_clip:ViT-S-32@{tmp_path / 'missing.bin'}")


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        build_backbone("timm:resnt18@none")
    with pytest.raises(ConfigError, match="Did you mean .*'ViT-B-16'"):
        build_backbone("open_clip:ViT-B-61@none")


@pytest.mark.parametrize("spec", ["resnet18", "timm:", "timm:resnet18@", "torchvision:resnet18@none"])
def test_malformed_spec_is_config_error(spec):
    with pytest.raises(ConfigError):
        build_backbone(spec)


def test_offline_efficientnet_weights_only_for_lite0():
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        build_backbone("timm:resnet18@imagenet-offline")


@needs_offline
def test_unavailable_open_clip_weights_fail_loudly():
    with pytest.raises(ConfigError, match=r"could not be loaded \(offline\?\).*@none"):
        build_backbone("open_clip:ViT-B-32@openai", image_size=64)
    with pytest.raises(ConfigError, match="no weights 'openai' for 'ViT-S-32'"):
        build_backbone("open_clip:ViT-S-32@openai")


@needs_offline
def test_unavailable_timm_default_weights_fail_loudly():
    with pytest.raises(ConfigError, match="timm default weights for resnet18 could not be loaded"):
        build_backbone("timm:resnet18")


def test_public_accessors_name_the_layers_and_what_follows(backbone):
    bb, _ = backbone
    assert len(bb.blocks) == len(bb.layer_names)
    _, params = bb.modules_after(len(bb.blocks) - 1)
    inside_last = {id(p) for p in bb.blocks[-1].parameters()}
    assert not inside_last & {id(p) for p in params}
    if bb.library == "open_clip":
        assert any(p is bb.model.proj for p in params)  # the projection is a bare root parameter


def test_block_parts_tap_the_named_sublayer(backbone):
    bb, x = backbone
    if bb.kind == "cnn":
        with pytest.raises(ConfigError, match="CNN"):
            bb.block_part(0, "mlp_norm")
        return
    norm = bb.block_part(-1, "mlp_norm")
    assert isinstance(norm, torch.nn.LayerNorm)
    seen = []
    handle = norm.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        states, embedding = bb.forward_parts(x, "mlp_norm", layers=[0, -1])
        handle.remove()
        assert len(states) == 2 and torch.equal(embedding, bb(x))
    seq = seen[0] if bb._batch_first else seen[0].transpose(0, 1)
    assert torch.equal(states[1].global_token, seq[:, 0])  # the class token after the second LayerNorm
    with pytest.raises(ConfigError, match="Unknown block part"):
        bb.block_part(0, "ln_9")


def test_unprojected_embedding_is_the_pooled_token_before_proj(backbone):
    bb, x = backbone
    with torch.no_grad():
        raw = bb(x, projected=False)
        assert raw.shape == (2, bb.unprojected_dim)
        if bb.library == "open_clip":
            torch.testing.assert_close(raw @ bb.model.proj, bb(x), rtol=1e-4, atol=1e-5)
            assert bb.model.proj is not None  # restored after the call
        else:
            assert torch.equal(raw, bb(x))
