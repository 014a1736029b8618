"""Tests for detectors/sam.py: the SAM-only baseline (``sam``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.errors import ConfigError
from bench.plugin.factory import parse_overrides, resolve_detector
from bench.testing import check_detector

VIT = {"backbone": "timm:vit_tiny_patch16_224@none", "image_size": 32}
RESNET = {"backbone": "timm:resnet18@none", "image_size": 32}



def build(**settings):
    return resolve_detector("sam", {**VIT, **settings}).build()


def trainable(det) -> set[str]:
    return {n for n, p in det.named_parameters() if p.requires_grad}


# EfficientNet-Lite0 (BatchNorm, offline weights) is covered by test_corit's check through the subclass.
@pytest.mark.parametrize("settings", [VIT, RESNET], ids=["vit", "resnet"])
def test_sam_passes_check_detector(settings):
    checks = check_detector(resolve_detector("sam", settings).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_defaults_follow_the_specification():
    from detectors.sam import SAMBaseline

    cfg = SAMBaseline.Config()
    assert (cfg.backbone, cfg.image_size, cfg.tune, cfg.lr, cfg.weight_decay, cfg.rho, cfg.adaptive) == (
        "open_clip:ViT-L-14-quickgelu@openai", 224, "norm", 1e-4, 0.0, 0.05, False)
    assert SAMBaseline.paper == "2603.24057"


def test_tune_chooses_the_trained_parameters():
    head = {"head.weight", "head.bias"}
    assert trainable(build(tune="none")) == head
    norm = trainable(build(tune="norm")) - head
    assert norm and all(n.rsplit(".", 2)[-2].startswith("norm") for n in norm)
    last = trainable(build(tune="last:2")) - head
    assert {n.split(".")[3] for n in last if n.startswith("backbone.model.blocks.")} == {"10", "11"}
    assert {"backbone.model.norm.weight", "backbone.model.norm.bias"} <= last
    full = build(tune="full")
    assert trainable(full) == {n for n, _ in full.named_parameters()}


@pytest.mark.parametrize("tune,batchnorm_training", [("norm", False), ("full", True), ("last:1", None)])
def test_frozen_parts_and_norm_tuned_batchnorm_stay_in_eval_mode(tune, batchnorm_training):
    det = resolve_detector("sam", {**RESNET, "tune": tune}).build().train()
    bns = {n: m.training for n, m in det.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)}
    if batchnorm_training is not None:
        assert set(bns.values()) == {batchnorm_training}
    else:  # last:1 trains layer4 only
        assert {n for n, t in bns.items() if t} == {n for n in bns if n.startswith("model.layer4.")}
    assert det.head.training


def test_train_step_logs_both_losses():
    det = build()
    from accelerate import Accelerator

    from bench.plugin.types import StepContext

    acc = Accelerator(cpu=True)
    optimizer, _ = det.configure_optimizer(1)
    model, optimizer = acc.prepare(det, optimizer)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    out = det.train_step(batch, StepContext(model=model, optimizer=optimizer, accelerator=acc))
    assert set(out) == {"loss", "loss_perturbed"}


@pytest.mark.parametrize("tune", ["last:0", "last:99", "bogus", "last:x", "norms"])
def test_tune_matching_no_parameter_is_a_config_error(tune):
    with pytest.raises(ConfigError, match="tune"):
        build(tune=tune)


@pytest.mark.parametrize("rho", ["-0.1", "nan", "abc"])
def test_bad_radius_is_a_config_error(rho):
    with pytest.raises(ConfigError, match="rho"):
        resolve_detector("sam", {**VIT, **parse_overrides([f"rho={rho}"])}).build()
