"""Tests for detectors/npr.py: the NPR residual, the published recipe, released weights, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from detector_runs import run_tiny
from PIL import Image

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.testing import check_detector
from detectors.blocks.truncated_resnet import TruncatedResNet
from detectors.npr import NPR, npr_residual


def test_npr_passes_check_detector():
    checks = check_detector(resolve_detector("npr", {"image_size": 32}).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_residual_of_a_nearest_upsampled_image_is_zero():
    small = torch.rand(2, 3, 8, 8)
    upsampled = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # each pixel → a 2×2 cell
    assert torch.equal(npr_residual(upsampled), torch.zeros_like(upsampled))


def test_residual_compares_each_pixel_with_its_cells_top_left():
    x = torch.rand(1, 3, 6, 6)
    r = npr_residual(x)
    assert torch.equal(r[..., ::2, ::2], torch.zeros_like(r[..., ::2, ::2]))
    assert torch.equal(r[..., 2, 5], x[..., 2, 5] - x[..., 2, 4])
    assert torch.equal(r[..., 3, 3], x[..., 3, 3] - x[..., 2, 2])
    with pytest.raises(ValueError, match="even"):
        npr_residual(torch.rand(1, 3, 5, 6))


def test_network_sees_two_thirds_of_the_residual():
    det = NPR(NPR.Config(image_size=16)).eval()
    seen = []
    det.net.conv1.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = torch.rand(2, 3, 16, 16)
    det(x)
    assert torch.allclose(seen[0], npr_residual(x) * 2 / 3)


def test_defaults_are_the_published_recipe():
    cfg = NPR.Config()
    assert (cfg.image_size, cfg.load_size, cfg.resize, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.lr_decay,
            cfg.lr_decay_every, cfg.select) == (224, 256, "square", 2e-4, 0.0, 50, 0.9, 10, "last")
    det = NPR(NPR.Config(image_size=32))
    assert 1.40e6 < sum(p.numel() for p in det.parameters()) < 1.48e6
    assert det.net.conv1.kernel_size == (3, 3) and det.net.conv1.stride == (2, 2)
    assert not hasattr(det.net, "layer3") and det.net.fc1.out_features == 1
    dc = det.data_config()
    assert (dc.mean, dc.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_odd_image_size_is_a_config_error():
    with pytest.raises(ConfigError, match="needs an even size"):
        resolve_detector("npr", {"image_size": 33}).build()


def normalise(det, pixels: np.ndarray) -> torch.Tensor:
    dc = det.data_config()
    return (torch.tensor(pixels).permute(2, 0, 1) / 255.0 - torch.tensor(dc.mean)[:, None, None]) \
        / torch.tensor(dc.std)[:, None, None]


def test_test_images_are_resized_to_a_square_without_cropping_as_the_authors_test():
    det = NPR(NPR.Config(image_size=16, load_size=20))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 24, 3), dtype=np.uint8))
    out = det.transform(train=False)(image)
    expected = normalise(det, np.asarray(image.resize((20, 20), Image.BILINEAR)))
    assert out.shape == (3, 20, 20) and torch.allclose(out, expected, atol=1e-6)
    steps = det.transform(train=True).transforms
    assert steps[0].size == [20, 20] and det.transform(train=True)(image).shape == (3, 16, 16)


def test_the_centre_crop_test_stays_a_setting():
    det = NPR(NPR.Config(image_size=16, resize="center_crop"))
    pixels = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    out = det.transform(train=False)(Image.fromarray(pixels))
    assert torch.allclose(out, normalise(det, pixels[4:20, 4:20]), atol=1e-6)
    with pytest.raises(ConfigError, match="resize"):
        NPR(NPR.Config(resize="stretch"))
    with pytest.raises(ConfigError, match="load_size"):
        NPR(NPR.Config(load_size=15))


def test_results_record_the_transforms_a_run_used(tmp_path):
    result = run_tiny(tmp_path, "npr", "-o", "load_size=64")
    transforms = result["detector"]["transforms"]
    assert "Resize(size=[64, 64]" in transforms["eval"] and "CenterCrop" not in transforms["eval"]
    assert "RandomCrop(size=(32, 32)" in transforms["train"]


def test_lr_is_multiplied_by_0_9_after_epochs_10_20_30_40():
    det = NPR(NPR.Config(image_size=16))
    optimizer, scheduler = det.configure_optimizer(total_steps=50 * 2)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    per_epoch = lrs[::2]
    assert per_epoch[10] == pytest.approx(2e-4) and per_epoch[11] == pytest.approx(1.8e-4)
    assert per_epoch[21] == pytest.approx(2e-4 * 0.9**2) and per_epoch[49] == pytest.approx(2e-4 * 0.9**4)


def released_npr_file(path, fc_rows: int = 1, drop: str | None = None) -> dict:
    """A file laid out like the authors' ``NPR.pth``: a plain state dict, random values."""
    state = {k: (torch.rand(v.shape) + 0.5 if k.endswith("running_var") else torch.randn(v.shape) * 0.1)
             if v.is_floating_point() else v for k, v in TruncatedResNet(fc_rows).state_dict().items()}
    state.pop(drop, None)
    torch.save(state, path)
    return state


def test_released_state_dict_loads_strictly(tmp_path):
    state = released_npr_file(tmp_path / "NPR.pth")
    assert state["conv1.weight"].shape == (64, 3, 3, 3) and state["fc1.weight"].shape == (1, 512)
    assert {"layer1.2.conv3.weight", "layer2.3.bn3.running_var", "layer2.0.downsample.0.weight"} <= set(state)
    result = run_tiny(tmp_path, "npr", "--eval-only", "--checkpoint", str(tmp_path / "NPR.pth"))
    assert result["selection"]["rule"] == "eval_only"
    det = NPR(NPR.Config(image_size=32))
    det.load_checkpoint(state, "NPR.pth", {})
    assert torch.equal(det.net.fc1.weight, state["fc1.weight"])
    assert torch.equal(det.net.layer2[3].bn3.running_var, state["layer2.3.bn3.running_var"])


def test_released_file_with_wrong_keys_or_shapes_fails(tmp_path):
    det = NPR(NPR.Config(image_size=32))
    with pytest.raises(ConfigError, match=r"missing keys \['layer2.1.conv2.weight'\]"):
        det.load_checkpoint(released_npr_file(tmp_path / "a.pth", drop="layer2.1.conv2.weight"), "a.pth", {})
    with pytest.raises(ConfigError, match=r"'fc1.weight' has shape \(2, 512\).*needs \(1, 512\)"):
        det.load_checkpoint(released_npr_file(tmp_path / "b.pth", fc_rows=2), "b.pth", {})


@pytest.mark.slow
def test_npr_runs_end_to_end(tmp_path):
    result = run_tiny(tmp_path, "npr")
    assert result["status"] == "complete" and result["detector"]["config"]["image_size"] == 32
    assert result["selection"]["rule"] == "last" and np.isfinite(result["groups"]["unseen"]["auc"])
