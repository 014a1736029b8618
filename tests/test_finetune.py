"""Tests for detectors/finetune.py: the DeepfakeBench presets, the two-class head, its augmentation,
DeepfakeBench's released Xception file, end to end."""

from __future__ import annotations

import random

import numpy as np
import pytest
import timm
import torch
from detector_runs import run_tiny
from PIL import Image

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.testing import check_detector
from detectors.blocks.augment import DeepfakeBenchAugment

LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


def test_finetune_passes_check_detector():
    checks = check_detector(resolve_detector("finetune", LITE0).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_presets_resolve_to_the_deepfakebench_settings():
    shared = {"image_size": 256, "norm": "half", "two_class": True, "lr": 2e-4, "weight_decay": 5e-4, "epochs": 10,
              "flip_prob": 0.5, "blur_prob": 0.5, "color_prob": 0.5, "jpeg_prob": 0.5, "jpeg_quality": [40, 100],
              "select": "best:auc"}
    xception = resolve_detector("xception").config
    effnet = resolve_detector("effnet_b4").config
    assert all(getattr(xception, k) == v and getattr(effnet, k) == v for k, v in shared.items())
    assert (xception.backbone, xception.rotate_prob, xception.drop_path) == ("timm:legacy_xception.tf_in1k", 0.0, 0.0)
    assert (effnet.backbone, effnet.rotate_prob, effnet.rotate_limit, effnet.drop_path) == (
        "timm:tf_efficientnet_b4.aa_in1k", 0.5, 10.0, 0.2)
    assert resolve_detector("finetune").config == xception  # finetune's defaults are the Xception recipe
    assert resolve_detector("xception").paper == "2307.01426"


def test_protocol_defaults_swap_the_backbone_of_a_preset():
    spec = resolve_detector("effnet_b4", None, {"backbone": LITE0["backbone"], "image_size": 64})
    assert (spec.config.backbone, spec.config.image_size, spec.config.rotate_prob) == (LITE0["backbone"], 64, 0.5)


def test_two_class_head_gives_the_logit_difference_and_cross_entropy():
    det = resolve_detector("finetune", LITE0).build().eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        z = det.head(det.backbone(x))
        assert torch.allclose(det(x), z[:, 1] - z[:, 0])
    labels = torch.tensor([0, 1, 1])
    assert torch.allclose(det.loss(z[:, 1] - z[:, 0], {"label": labels}), torch.nn.functional.cross_entropy(z, labels),
                          atol=1e-6)
    optimizer, scheduler = det.configure_optimizer(1)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 5e-4 and scheduler is None
    assert all(p.requires_grad for p in det.parameters())


def test_drop_path_applies_to_efficientnets_only():
    det = resolve_detector("effnet_b4", LITE0).build()
    rates = [b.drop_path.drop_prob for stage in det.backbone.model.blocks for b in stage
             if hasattr(b.drop_path, "drop_prob")]
    assert rates and max(rates) < 0.2 and rates == sorted(rates)
    with pytest.raises(ConfigError, match="drop_path"):
        resolve_detector("finetune", {"backbone": "timm:resnet18@none", "image_size": 32, "drop_path": 0.2}).build()


def test_deepfakebench_augmentation():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    off = DeepfakeBenchAugment(0, 0, 10, 0, 0, 0)
    assert np.array_equal(np.asarray(off(img)), np.asarray(img))
    random.seed(1)
    flipped = DeepfakeBenchAugment(1.0, 0, 10, 0, 0, 0)(img)
    assert np.array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    random.seed(1)
    blurred = np.asarray(DeepfakeBenchAugment(0, 0, 10, 1.0, 0, 0)(img), dtype=float)
    assert blurred.std() < np.asarray(img, dtype=float).std()  # low-passed
    random.seed(2)
    rotated = np.asarray(DeepfakeBenchAugment(0, 1.0, 10, 0, 0, 0)(img))
    assert rotated.shape == (32, 32, 3) and (rotated[0] > 0).any()  # reflected borders, no black corners
    det = resolve_detector("finetune", LITE0).build()
    assert any(isinstance(t, DeepfakeBenchAugment) for t in det.transform(train=True).transforms)
    assert not any(isinstance(t, DeepfakeBenchAugment) for t in det.transform(train=False).transforms)


def test_deepfakebench_xception_file_scores_as_published(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model("legacy_xception", num_classes=2).eval()
    state = {("backbone.last_linear." + k[3:] if k.startswith("fc.") else "backbone." + k): v
             for k, v in reference.state_dict().items()}
    assert state["backbone.last_linear.weight"].shape == (2, 2048)
    assert {"backbone.conv3.pointwise.weight", "backbone.block12.skipbn.running_var",
            "backbone.block1.rep.0.conv1.weight", "backbone.conv4.conv1.weight"} <= set(state)
    torch.save(state, tmp_path / "xception_best.pth")
    result = run_tiny(tmp_path, "xception", "--eval-only", "--checkpoint", str(tmp_path / "xception_best.pth"),
                      "-o", "backbone=timm:legacy_xception@none", "-o", "image_size=64")
    assert result["selection"]["rule"] == "eval_only" and np.isfinite(result["groups"]["unseen"]["auc"])
    det = resolve_detector("xception", {"backbone": "timm:legacy_xception@none", "image_size": 64}).build().eval()
    det.load_checkpoint(state, "xception_best.pth", {})
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        z = reference(x)
        assert torch.allclose(det(x), z[:, 1] - z[:, 0], atol=1e-4)
    with pytest.raises(ConfigError, match="two_class=true"):
        resolve_detector("xception", {"backbone": "timm:legacy_xception@none", "image_size": 64,
                                      "two_class": False}).build().load_checkpoint(state, "x.pth", {})
    bad = {**state, "extra.weight": torch.zeros(1)}
    with pytest.raises(ConfigError, match="keys outside backbone"):
        det.load_checkpoint(bad, "x.pth", {})


#: The 2048 -> 512 1x1 conv + BatchNorm DeepfakeBench's Xception builds and, in its "original" mode, never uses.
ADJUST_CHANNEL = {"backbone.adjust_channel.0.weight": (512, 2048, 1, 1), "backbone.adjust_channel.0.bias": (512,),
                  **{f"backbone.adjust_channel.1.{k}": (512,) for k in ("weight", "bias", "running_mean", "running_var")},
                  "backbone.adjust_channel.1.num_batches_tracked": ()}


def test_a_deepfakebench_xception_file_with_its_unused_adjust_channel_loads(tmp_path):
    torch.manual_seed(0)
    det = resolve_detector("xception", {"backbone": "timm:legacy_xception@none", "image_size": 64}).build().eval()
    reference = timm.create_model("legacy_xception", num_classes=2).eval()
    state = {("backbone.last_linear." + k[3:] if k.startswith("fc.") else "backbone." + k): v
             for k, v in reference.state_dict().items()}
    state.update({k: torch.ones(shape) if shape else torch.tensor(7) for k, shape in ADJUST_CHANNEL.items()})
    torch.save(state, tmp_path / "xception_best.pth")
    from bench.run.checkpoint import read_checkpoint

    loaded, meta = read_checkpoint(tmp_path / "xception_best.pth")
    det.load_checkpoint(loaded, "xception_best.pth", meta)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        z = reference(x)
        assert torch.allclose(det(x), z[:, 1] - z[:, 0], atol=1e-4)
    # Exactly those seven keys are dropped: another adjust_channel key, or one of another shape, is refused.
    for bad in ({**state, "backbone.adjust_channel.2.weight": torch.zeros(1)},
                {**state, "backbone.adjust_channel.0.weight": torch.zeros(512, 1024, 1, 1)}):
        with pytest.raises(ConfigError, match="adjust_channel"):
            det.load_checkpoint(bad, "x.pth", {})


@pytest.mark.slow
def test_finetune_runs_end_to_end(tmp_path):
    result = run_tiny(tmp_path, "finetune")
    assert result["status"] == "complete" and result["selection"]["rule"] == "best:auc"
    assert result["detector"]["params_trainable"] == result["detector"]["params_total"]
