"""Tests for detectors/gend.py and detectors/blocks/metric_losses.py: GenD's norm tuning and metric losses."""

from __future__ import annotations

import math

import hf_clip_reference as hf
import pytest
import torch
from accelerate import Accelerator
from conftest import write_tiny_protocol
from torch import nn
from torch.nn import functional as F

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.types import StepContext
from bench.run.checkpoint import read_checkpoint
from bench.testing import check_detector
from detectors.blocks.metric_losses import alignment, uniformity

VIT = {"backbone": "timm:vit_tiny_patch16_224@none", "image_size": 32, "augment": "none"}
LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


def build(**settings):
    return resolve_detector("gend", {**VIT, **settings}).build()


def one_step(det, labels=(0, 1, 0, 1)):
    acc = Accelerator(cpu=True)
    optimizer, _ = det.configure_optimizer(10)
    model, optimizer = acc.prepare(det, optimizer)
    det.train()
    batch = {"image": torch.randn(len(labels), 3, 32, 32), "label": torch.tensor(labels)}
    return det.train_step(batch, StepContext(model=model, optimizer=optimizer, accelerator=acc))


@pytest.mark.parametrize("settings", [VIT, LITE0], ids=["vit", "efficientnet"])
def test_gend_passes_check_detector(settings):
    assert "train_step" in check_detector(resolve_detector("gend", settings).build)


def test_defaults_are_the_published_recipe():
    from detectors.gend import GenD

    c = GenD.Config()
    assert (c.backbone, c.image_size, c.lr, c.min_lr, c.weight_decay, c.epochs, c.lr_cycles, c.uniformity_weight,
            c.alignment_weight, c.augment, c.select) == ("open_clip:ViT-L-14-quickgelu@openai", 224, 3e-4, 1e-6, 0.0,
                                                         30, 3, 0.5, 0.1, "gend", "best:ap")
    assert "BatchNorm" in GenD.portability_notes


def test_only_layernorm_affines_and_the_head_train():
    det = build()
    trainable = {n for n, p in det.named_parameters() if p.requires_grad}
    norms = {f"backbone.model.{n}.{p}" for n, m in det.backbone.model.named_modules()
             if isinstance(m, nn.LayerNorm) for p in ("weight", "bias")}
    assert trainable == norms | {"head.linear.weight", "head.linear.bias"}
    assert len(norms) == 2 * (2 * len(det.backbone.blocks) + 1)  # norm1, norm2 per block + the final norm


def test_cnn_batchnorm_affines_train_but_running_statistics_stay_frozen():
    det = resolve_detector("gend", LITE0).build()
    bns = [m for m in det.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    stats = [m.running_mean.clone() for m in bns]
    before = [m.weight.detach().clone() for m in bns]
    one_step(det)
    assert all(not m.training for m in bns)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bns, stats))
    assert any(not torch.equal(m.weight, w) for m, w in zip(bns, before))


def test_the_class_token_is_l2_normalised_before_the_head():
    det = build().eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits, z = det(images, return_features=True)
        raw = det.backbone(images, projected=False)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    w, b = det.head.linear.weight, det.head.linear.bias
    torch.testing.assert_close(logits, F.normalize(raw, dim=1) @ (w[1] - w[0]) + (b[1] - b[0]))


def test_the_metric_losses_gradients_are_the_same_bits_on_two_threads():
    """The committed gend rows moved between runs at the same seed: the alignment gradient was summed in a
    thread-dependent order (two advanced-indexing reads of z). Repeated backward passes must agree exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        z0 = F.normalize(torch.randn(64, 1280, generator=g), dim=-1)
        labels = torch.randint(0, 2, (64,), generator=g)
        grads = []
        for _ in range(20):
            z = z0.clone().requires_grad_(True)
            (uniformity(z) + alignment(z, labels)).backward()
            grads.append(z.grad)
        assert all(torch.equal(grads[0], other) for other in grads[1:])
    finally:
        torch.set_num_threads(threads)


def test_uniformity_and_alignment_match_a_hand_computed_example():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # Squared distances: (0,1) 2, (0,2) 4, (1,2) 2.
    expected = math.log((2 * math.exp(-2 * 2) + math.exp(-2 * 4)) / 3)
    assert uniformity(z).item() == pytest.approx(expected, rel=1e-6)
    assert alignment(z, torch.tensor([0, 0, 1])).item() == pytest.approx(2.0)  # only the pair (0, 1)
    assert alignment(z, torch.tensor([0, 1, 2])).item() == 0.0  # no same-label pair
    assert uniformity(torch.zeros(4, 2)).item() == pytest.approx(0.0)  # all equal: log(1)
    assert uniformity(torch.tensor([[0.0, 0.0], [100.0, 0.0]])).item() == pytest.approx(math.log(1e-6))  # clamp


def test_the_step_adds_the_weighted_metric_losses_to_cross_entropy():
    out = {k: float(v) for k, v in one_step(build()).items()}
    assert set(out) == {"loss", "ce", "uniformity", "alignment"}
    assert out["loss"] == pytest.approx(out["ce"] + 0.5 * out["uniformity"] + 0.1 * out["alignment"], rel=1e-5)


def test_cosine_schedule_restarts_every_cycle():
    det = build(lr=1.0, min_lr=0.0, lr_cycles=3)
    optimizer, scheduler = det.configure_optimizer(30)
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == lrs[10] == lrs[20] == 1.0 and lrs[5] == pytest.approx(0.5) and lrs[9] < 0.03


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="lr_cycles"):
        build(lr_cycles=0)
    with pytest.raises(ConfigError, match="augment"):
        build(augment="heavy")


def released_file(directory, image_size):
    """GenD's Hugging Face safetensors layout with ViT-S-32 shapes."""
    from safetensors.torch import save_file

    vision = hf.random_state(image_size, seed=1)
    state = {f"feature_extractor.vision_model.{k}": v for k, v in vision.items()}
    state["feature_extractor.visual_projection.weight"] = torch.randn(hf.WIDTH // 2, hf.WIDTH)
    state["model.linear.weight"], state["model.linear.bias"] = torch.randn(2, hf.WIDTH), torch.tensor([0.3, -0.1])
    path = directory / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    return path, vision, state


def test_released_safetensors_loads_strictly_and_scores_as_hf_clip(tmp_path):
    path, vision, raw = released_file(tmp_path, 64)
    # ViT-S-32's projection is 384 x 384; the file's is 192 x 384, so map it onto a matching width first.
    det = resolve_detector("gend", {"backbone": "open_clip:ViT-S-32@none", "image_size": 64}).build().eval()
    state, meta = read_checkpoint(path)
    with pytest.raises(ConfigError, match="'proj' has shape"):
        det.load_checkpoint(state, str(path), meta)
    state["feature_extractor.visual_projection.weight"] = torch.randn(*det.backbone.model.proj.shape[::-1])
    det.load_checkpoint(state, str(path), meta)
    torch.testing.assert_close(det.backbone.model.proj, state["feature_extractor.visual_projection.weight"].t())
    images = torch.randn(3, 3, 64, 64)
    w, b = raw["model.linear.weight"], raw["model.linear.bias"]
    expected = F.normalize(hf.pooler_output(vision, images), dim=1) @ (w[1] - w[0]) + (b[1] - b[0])
    with torch.no_grad():
        torch.testing.assert_close(det(images), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="unexpected keys"):
        det.load_checkpoint({**state, "text_model.x": torch.zeros(1)}, str(path), meta)


def test_a_file_transformers_wrote_in_gends_layout_scores_as_transformers(tmp_path):
    """The file is a ``transformers`` PreTrainedModel in GenD's layout saved with ``save_pretrained``."""
    model, path = hf.saved_gend(tmp_path / "gend")
    det = resolve_detector("gend", {"backbone": "open_clip:ViT-S-32@none", "image_size": 64}).build().eval()
    state, meta = read_checkpoint(path)
    det.load_checkpoint(state, path, meta)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        pooled = model.feature_extractor.vision_model(pixel_values=images).pooler_output
        logits = model.model.linear(F.normalize(pooled, dim=1))
        torch.testing.assert_close(det(images), logits[:, 1] - logits[:, 0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(det.backbone.model.proj, model.feature_extractor.visual_projection.weight.t())


@pytest.mark.slow
def test_cli_trains_end_to_end_and_evaluates_a_released_file(tmp_path):
    import json

    from bench.cli import main

    proto, out = write_tiny_protocol(tmp_path), tmp_path / "runs"
    common = ["run", "--protocol", str(proto), "--detector", "gend", "--limit", "4", "--batch-size", "4"]
    main([*common, "--out", str(out / "train")])
    path, _, raw = released_file(tmp_path, 32)
    del raw["feature_extractor.visual_projection.weight"]  # optional: the detector reads the token before it
    from safetensors.torch import save_file

    save_file(raw, str(path))
    main([*common, "--out", str(out / "eval"), "--eval-only", "--checkpoint", str(path),
          "-o", "backbone=open_clip:ViT-S-32@none", "-o", "image_size=32"])
    for kind, rule in (("train", "best:ap"), ("eval", "eval_only")):
        result = json.loads(next((out / kind).rglob("results.json")).read_text())
        assert result["selection"]["rule"] == rule and result["detector"]["name"] == "gend"


@pytest.mark.parametrize("protocol", ["synthetic_universal", "synthetic_cross_domain"])
def test_embedded_protocol_block_resolves(protocol):
    from bench.protocol import load_protocol

    spec = resolve_detector("gend", None, load_protocol(protocol).detector_defaults)
    assert spec.config.backbone == "timm:tf_efficientnet_lite0@imagenet-offline" and spec.config.epochs == 3
    assert spec.config.select is None  # the protocol's own selection rule applies
