"""Tests for detectors/rine.py and the SupCon loss: RINE's intermediate taps and importance weights."""

from __future__ import annotations

import math

import pytest
import torch
from accelerate import Accelerator
from conftest import write_tiny_protocol

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.types import StepContext
from bench.plugin.weights import trained_state
from bench.run.checkpoint import read_checkpoint
from bench.testing import check_detector
from detectors.blocks.metric_losses import supcon

VIT = {"backbone": "timm:vit_tiny_patch16_224@none", "image_size": 32, "proj_dim": 16, "augment": "none"}
LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32, "proj_dim": 16}
CLIP = {"backbone": "open_clip:ViT-S-32@none", "image_size": 32, "proj_dim": 16}


def build(**settings):
    return resolve_detector("rine", {**VIT, **settings}).build()


@pytest.mark.parametrize("settings", [VIT, LITE0], ids=["vit", "efficientnet"])
def test_rine_passes_check_detector(settings):
    assert "train_step" in check_detector(resolve_detector("rine", settings).build)


def test_defaults_are_the_released_four_class_model():
    from detectors.rine import RINE

    c = RINE.Config()
    assert (c.backbone, c.image_size, c.nproj, c.proj_dim, c.supcon_weight, c.temperature, c.lr, c.epochs,
            c.augment, c.select) == ("open_clip:ViT-L-14-quickgelu@openai", 224, 2, 1024, 0.2, 0.07, 1e-3, 1,
                                     "blur_jpeg", "last")
    assert "per-tap" in RINE.portability_notes


def test_taps_are_class_tokens_at_each_second_layernorm_output_not_the_block_output():
    det = resolve_detector("rine", CLIP).build().eval()
    recorded = []
    blocks = det.backbone.model.transformer.resblocks
    handles = [b.ln_2.register_forward_hook(lambda m, a, out: recorded.append(out[:, 0])) for b in blocks]
    images = torch.randn(2, 3, 32, 32)
    try:
        taps = det.taps(images)
    finally:
        for h in handles:
            h.remove()
    assert taps.shape == (2, len(blocks), 384)
    torch.testing.assert_close(taps, torch.stack(recorded, 1))
    with torch.no_grad():
        block_outputs = torch.stack([s.global_token for s in det.backbone.forward_layers(images)[0]], 1)
    assert not torch.allclose(taps, block_outputs, atol=1e-3)


def test_cnn_taps_are_pooled_stages_plus_the_head_conv_with_a_linear_per_tap():
    from detectors.rine import PerTapLinear

    det = resolve_detector("rine", LITE0).build().eval()
    assert det.taps(torch.randn(2, 3, 32, 32)).shape == (2, 16 + 24 + 40 + 112 + 320 + 1280)
    assert isinstance(det.proj1[1], PerTapLinear) and [lin.in_features for lin in det.proj1[1].taps] == [
        16, 24, 40, 112, 320, 1280]
    assert det.alpha.shape == (1, 6, 16)


def test_importance_weights_are_learned_and_shape_the_logit():
    torch.manual_seed(0)
    det = build()
    alpha = det.alpha.detach().clone()
    acc = Accelerator(cpu=True)
    optimizer, _ = det.configure_optimizer(1)
    model, optimizer = acc.prepare(det, optimizer)
    det.train()
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    out = det.train_step(batch, StepContext(model=model, optimizer=optimizer, accelerator=acc))
    assert set(out) == {"loss", "bce_sum", "supcon"} and not torch.equal(det.alpha, alpha)
    det.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = det(images)
        det.alpha[:, 0] += 5.0  # put (almost) all weight on the first block
        after = det(images)
    assert not torch.allclose(before, after)


def test_supcon_matches_its_definition_on_a_small_example():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.2], [0.3, -1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2])  # the last anchor has no positive
    tau = 0.5
    per_anchor = []
    for i in range(4):
        others = [a for a in range(5) if a != i]
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in others)
        pos = [p for p in others if labels[p] == labels[i]]
        per_anchor.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in pos) / len(pos))
    # RINE's released loss averages over all 5 anchors: the one without a positive counts 0.
    expected = (tau / 0.07) * sum(per_anchor) / 5
    assert supcon(z, labels, temperature=tau, base_temperature=0.07).item() == pytest.approx(expected, rel=1e-5)
    assert supcon(z, torch.arange(5)).item() == 0.0  # no positive pair at all
    assert supcon(z[:1], labels[:1]).item() == 0.0  # a final batch of one: 0, not NaN


def released_state(det) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trained_state(det).items()}


def test_released_layout_is_the_trainable_part_only_and_loads_strictly(tmp_path):
    torch.manual_seed(5)  # the same random backbone for both detectors
    det = build(nproj=2)
    with torch.no_grad():
        for p in det.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # trained weights differ from a fresh init
    state = released_state(det)
    linears = {f"{p}.{i}.{t}" for p, idx in (("proj1", (1, 4)), ("proj2", (1, 4)), ("head", (0, 3, 6)))
               for i in idx for t in ("weight", "bias")}
    assert set(state) == linears | {"alpha"}
    torch.save(state, tmp_path / "model_4class_trainable.pth")
    loaded, meta = read_checkpoint(tmp_path / "model_4class_trainable.pth")
    torch.manual_seed(5)
    other = build(nproj=2)
    other.load_checkpoint(loaded, "model_4class_trainable.pth", meta)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(images), det.eval()(images))
    with pytest.raises(ConfigError, match="-o nproj=2 -o proj_dim=16"):
        build(nproj=4).load_checkpoint(loaded, "model_4class_trainable.pth", meta)


@pytest.mark.slow
def test_cli_trains_end_to_end_and_evaluates_a_released_file(tmp_path):
    import json

    from bench.cli import main

    proto, out = write_tiny_protocol(tmp_path), tmp_path / "runs"
    common = ["run", "--protocol", str(proto), "--detector", "rine", "--limit", "4", "--batch-size", "4",
              "-o", "proj_dim=16"]
    main([*common, "--out", str(out / "train")])
    trained = json.loads(next((out / "train").rglob("results.json")).read_text())
    assert trained["selection"]["rule"] == "last" and trained["detector"]["name"] == "rine"
    torch.save(released_state(build()), tmp_path / "model_4class_trainable.pth")
    main([*common, "--out", str(out / "eval"), "--eval-only", "--checkpoint", str(tmp_path / "model_4class_trainable.pth"),
          "-o", f"backbone={VIT['backbone']}"])
    evaluated = json.loads(next((out / "eval").rglob("results.json")).read_text())
    assert evaluated["selection"]["rule"] == "eval_only"


@pytest.mark.parametrize("protocol", ["synthetic_universal", "synthetic_cross_domain"])
def test_embedded_protocol_block_resolves(protocol):
    from bench.protocol import load_protocol

    spec = resolve_detector("rine", None, load_protocol(protocol).detector_defaults)
    assert spec.config.backbone == "timm:tf_efficientnet_lite0@imagenet-offline" and spec.config.epochs == 3
    assert spec.config.select is None  # the protocol's own selection rule applies
