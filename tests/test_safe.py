"""Tests for detectors/safe.py and detectors/blocks/wavelets.py: the DWT HH band, unnormalised crops, the
published recipe, the released checkpoint (with its argparse.Namespace), end to end."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from detector_runs import run_tiny
from PIL import Image

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.testing import check_detector
from detectors.blocks.augment import RandomPatchMask
from detectors.blocks.truncated_resnet import TruncatedResNet
from detectors.blocks.wavelets import dwt2_hh
from detectors.safe import SAFE

X = torch.tensor([[1.0, 4.0, 2.0, 0.0],
                  [3.0, 8.0, 5.0, 5.0],
                  [0.0, 1.0, 7.0, 2.0],
                  [6.0, 2.0, 1.0, 9.0]])


def test_safe_passes_check_detector():
    checks = check_detector(resolve_detector("safe", {"image_size": 32}).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_haar_hh_band_equals_the_hand_computed_one():
    # Haar HH of the 2×2 cell [[a, b], [c, d]] is (a − b − c + d) / 2.
    expected = torch.tensor([[(1 - 4 - 3 + 8) / 2, (2 - 0 - 5 + 5) / 2],
                             [(0 - 1 - 6 + 2) / 2, (7 - 2 - 1 + 9) / 2]])
    assert torch.allclose(dwt2_hh(X[None, None], "haar")[0, 0], expected)


def test_bior13_hh_band_is_haars_with_mirrored_borders():
    # bior1.3's analysis high-pass is Haar's padded to 6 taps, so with symmetric extension its HH band
    # is Haar's framed by one row/column on each side: −(first/last Haar row/column), corners +.
    haar = dwt2_hh(X[None, None], "haar")[0, 0]
    rows = torch.cat([-haar[:1], haar, -haar[-1:]])
    framed = torch.cat([-rows[:, :1], rows, -rows[:, -1:]], dim=1)
    out = dwt2_hh(X[None, None], "bior1.3")[0, 0]
    assert out.shape == (4, 4) and torch.allclose(out, framed)
    assert dwt2_hh(torch.rand(2, 3, 64, 64)).shape == (2, 3, 34, 34)


def test_network_input_is_the_hh_band_resized_back_to_the_crop():
    det = SAFE(SAFE.Config(image_size=16)).eval()
    seen = []
    det.net.conv1.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = torch.rand(2, 3, 16, 16)
    logit = det(x)
    hh = dwt2_hh(x, "bior1.3")
    assert seen[0].shape == x.shape
    assert torch.allclose(seen[0], torch.nn.functional.interpolate(hh, size=(16, 16), mode="bilinear"))
    z = det.net(seen[0])
    assert torch.allclose(logit, z[:, 1] - z[:, 0])


def test_inputs_are_unnormalised_crops():
    det = SAFE(SAFE.Config(image_size=16))
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    out = det.transform(train=False)(Image.fromarray(pixels))
    assert torch.allclose(out, torch.tensor(pixels[2:18, 4:20]).permute(2, 0, 1) / 255.0)
    train = det.transform(train=True)(Image.fromarray(pixels))
    assert train.shape == (3, 16, 16) and train.min() >= 0 and train.max() <= 1


def test_random_mask_zeroes_whole_grid_cells():
    torch.manual_seed(3)
    x = torch.ones(3, 64, 64)
    masked = [RandomPatchMask(p=1.0, max_ratio=0.75, patch=16)(x) for _ in range(20)]
    for m in masked:
        cells = m[0].reshape(4, 16, 4, 16).permute(0, 2, 1, 3).reshape(16, -1)
        assert all(c.eq(0).all() or c.eq(1).all() for c in cells)
        assert cells.eq(0).all(1).sum() <= 12  # at most 75 % of the 16 cells
    assert any((m == 0).any() for m in masked)
    assert torch.equal(RandomPatchMask(p=0.0)(x), x)


def test_defaults_are_the_published_recipe():
    cfg = SAFE.Config()
    assert (cfg.image_size, cfg.wavelet, cfg.lr, cfg.min_lr, cfg.weight_decay, cfg.epochs, cfg.warmup_epochs,
            cfg.label_smoothing, cfg.rotate_degrees, cfg.jitter, cfg.mask_prob, cfg.mask_max_ratio,
            cfg.mask_patch, cfg.select) == (256, "bior1.3", 5e-3, 1e-6, 0.01, 20, 1.0, 0.1, 180.0, 0.5, 0.5,
                                             0.75, 16, "best:acc")
    assert SAFE.checkpoint_globals == (argparse.Namespace,)


def test_loss_is_two_class_label_smoothed_cross_entropy():
    det = SAFE(SAFE.Config(image_size=16))
    z = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    expected = torch.nn.functional.cross_entropy(z, labels, label_smoothing=0.1)
    assert torch.allclose(det.loss(z[:, 1] - z[:, 0], {"label": labels}), expected, atol=1e-6)


def test_optimizer_skips_decay_on_biases_and_norms_and_warms_up_then_decays():
    det = SAFE(SAFE.Config(image_size=16, epochs=4, warmup_epochs=1.0))
    optimizer, scheduler = det.configure_optimizer(total_steps=40)
    groups = optimizer.param_groups
    assert groups[0]["weight_decay"] == 0.01 and all(p.ndim > 1 for p in groups[0]["params"])
    assert groups[1]["weight_decay"] == 0.0 and all(p.ndim == 1 for p in groups[1]["params"])
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(5e-3 / 10) and lrs[9] == pytest.approx(5e-3)
    assert lrs[25] == pytest.approx(1e-6 + (5e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 1.5 / 3)))
    assert lrs[-1] < lrs[20] < lrs[10]


def test_unknown_wavelet_is_a_config_error():
    with pytest.raises(ConfigError, match="Setting 'wavelet'.*use one of haar, bior1.3"):
        resolve_detector("safe", {"wavelet": "db4"}).build()


def test_released_checkpoint_with_its_namespace_loads(tmp_path):
    net = TruncatedResNet(2)
    model = {k: (torch.rand(v.shape) + 0.5 if k.endswith("running_var") else torch.randn(v.shape) * 0.1)
             if v.is_floating_point() else v for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-3)
    file = {"model": model, "optimizer": optimizer.state_dict(), "epoch": 19, "scaler": {"scale": 65536.0},
            "args": argparse.Namespace(model="resnet", input_size=256, blr=1e-2, transform_mode="crop")}
    torch.save(file, tmp_path / "checkpoint-best.pth")
    assert model["fc1.weight"].shape == (2, 512)
    result = run_tiny(tmp_path, "safe", "--eval-only", "--checkpoint", str(tmp_path / "checkpoint-best.pth"))
    assert result["selection"]["rule"] == "eval_only"
    from bench.run.checkpoint import read_checkpoint

    state, _ = read_checkpoint(tmp_path / "checkpoint-best.pth", SAFE.checkpoint_globals)
    det = SAFE(SAFE.Config(image_size=32))
    det.load_checkpoint(state, "checkpoint-best.pth", {})
    assert torch.equal(det.net.fc1.weight, model["fc1.weight"])
    with pytest.raises(ConfigError, match="cannot be read"):
        read_checkpoint(tmp_path / "checkpoint-best.pth")  # the Namespace is refused unless allowed


@pytest.mark.slow
def test_safe_runs_end_to_end(tmp_path):
    result = run_tiny(tmp_path, "safe")
    assert result["status"] == "complete" and result["selection"]["rule"] == "best:acc"
    assert np.isfinite(result["groups"]["unseen"]["auc"])
