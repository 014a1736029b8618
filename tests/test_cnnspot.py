"""Tests for detectors/cnnspot.py: full fine-tuning, blur + JPEG augmentation, the published recipe,
the released torchvision ResNet-50 file, end to end."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
import torchvision
from accelerate import Accelerator
from detector_runs import run_tiny
from PIL import Image
from torch import nn

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.transforms import BlurJpeg
from bench.plugin.types import StepContext
from bench.testing import check_detector
from detectors.cnnspot import CNNSpot

LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


def test_cnnspot_passes_check_detector():
    checks = check_detector(resolve_detector("cnnspot", LITE0).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_every_backbone_parameter_trains():
    det = resolve_detector("cnnspot", LITE0).build()
    assert all(p.requires_grad for p in det.parameters())
    optimizer, _ = det.configure_optimizer(total_steps=1)
    assert isinstance(optimizer, torch.optim.Adam)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(det.parameters()))
    before = {n: p.detach().clone() for n, p in det.named_parameters()}
    acc = Accelerator(cpu=True)
    model, optimizer = acc.prepare(det, optimizer)
    model.train()
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    det.train_step(batch, StepContext(model=model, optimizer=optimizer, accelerator=acc))
    unchanged = [n for n, p in det.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, f"parameters that did not train: {unchanged[:5]}"


def authors_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """CNNDetection's blur arithmetic: scipy's separable passes, each written into uint8 (floored)."""
    from scipy.ndimage import gaussian_filter1d

    out = arr.astype(np.float64)
    for axis in (0, 1):
        out = np.floor(gaussian_filter1d(out, sigma, axis=axis, mode="reflect"))
    return out.astype(np.uint8)


def test_augmentation_applies_blur_then_jpeg():
    det = resolve_detector("cnnspot", {**LITE0, "aug_prob": 1.0, "blur_sigma": [1.5, 1.5],
                                       "jpeg_quality": [40, 40]}).build()
    aug = det.augmentation()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    random.seed(0)
    out = np.asarray(aug(img))
    buf = io.BytesIO()
    Image.fromarray(authors_blur(np.asarray(img), 1.5)).save(buf, format="JPEG", quality=40)
    assert np.array_equal(out, np.asarray(Image.open(buf).convert("RGB")))
    assert np.array_equal(np.asarray(BlurJpeg(p=0.0)(img)), np.asarray(img))


def test_defaults_are_the_published_recipe():
    cfg = CNNSpot.Config()
    assert (cfg.backbone, cfg.image_size, cfg.lr, cfg.weight_decay, cfg.aug_prob, cfg.blur_sigma, cfg.jpeg_quality,
            cfg.select) == ("timm:resnet50.tv_in1k", 224, 1e-4, 0.0, 0.5, [0.0, 3.0], [30, 100], "best:acc")
    det = resolve_detector("cnnspot", LITE0).build()
    train = det.transform(train=True).transforms
    assert isinstance(train[0], BlurJpeg) and (train[0].p, train[0].jpeg_quality) == (0.5, (30, 100))
    assert det.data_config().resize == "center_crop"  # crops at test, never resizes
    assert det.head.out_features == 1 and "early stopping" in CNNSpot.portability_notes


def test_malformed_ranges_are_a_config_error():
    with pytest.raises(ConfigError, match="jpeg_quality"):
        resolve_detector("cnnspot", {**LITE0, "jpeg_quality": [30]}).build()


def test_released_torchvision_resnet50_file_scores_as_published(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50()
    reference.fc = nn.Linear(2048, 1)
    reference.eval()
    file = {"model": reference.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "total_steps": 1000}
    torch.save(file, tmp_path / "blur_jpg_prob0.5.pth")
    result = run_tiny(tmp_path, "cnnspot", "--eval-only", "--checkpoint", str(tmp_path / "blur_jpg_prob0.5.pth"),
                      "-o", "backbone=timm:resnet50@none")
    assert result["selection"]["rule"] == "eval_only"
    det = resolve_detector("cnnspot", {"backbone": "timm:resnet50@none", "image_size": 32}).build().eval()
    det.load_checkpoint(file["model"], "blur_jpg_prob0.5.pth", {})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(det(x), reference(x).squeeze(1), atol=1e-4)
    older = {k: v for k, v in file["model"].items() if not k.endswith("num_batches_tracked")}
    det.load_checkpoint(older, "older torchvision file", {})  # counters may be absent; nothing else may
    with pytest.raises(ConfigError, match=r"missing keys \['layer4.2.bn3.running_mean'\]"):
        det.load_checkpoint({k: v for k, v in older.items() if k != "layer4.2.bn3.running_mean"}, "f", {})
    lite = resolve_detector("cnnspot", LITE0).build()
    with pytest.raises(ConfigError, match="does not match CNNSpot's released ResNet-50"):
        lite.load_checkpoint(file["model"], "blur_jpg_prob0.5.pth", {})


@pytest.mark.slow
def test_cnnspot_runs_end_to_end(tmp_path):
    result = run_tiny(tmp_path, "cnnspot")
    assert result["status"] == "complete" and result["selection"]["rule"] == "best:acc"
    assert result["detector"]["params_trainable"] == result["detector"]["params_total"]
