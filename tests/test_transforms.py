"""Tests for the v2 transform pipeline: PIL inputs exactly as before, uint8 tensors within tolerance."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms.functional import pil_to_tensor

from bench.data.sources.photos import PHOTO_NAMES, load_photo
from bench.plugin.transforms import TENSOR_TOLERANCE, BlurJpeg, build_transform
from bench.plugin.types import DataConfig

STD = (0.27, 0.26, 0.28)


def v1_reference(cfg: DataConfig, train: bool, augment=None) -> T.Compose:
    """The pipeline as it was before transforms v2 (PIL only): the PIL path must reproduce it bit for bit."""
    modes = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
    steps = [augment] if (train and augment is not None) else []
    steps.append(T.Resize(cfg.image_size, interpolation=modes[cfg.interpolation]))
    steps += [T.RandomCrop(cfg.image_size, pad_if_needed=True), T.RandomHorizontalFlip()] if train \
        else [T.CenterCrop(cfg.image_size)]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])


def _run(transform, image, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    random.seed(seed)
    return transform(image)


@pytest.mark.parametrize("train", [False, True])
def test_pil_path_is_bit_identical_to_the_v1_pipeline(train):
    cfg = DataConfig(image_size=48, mean=(0.48, 0.46, 0.41), std=STD)
    for name in ("chelsea", "rocket"):  # non-square: the crop draws its row offset even when it is 0
        image = Image.fromarray(load_photo(name)).resize((90, 60))
        for seed in range(3):
            augment = BlurJpeg(p=0.5) if train else None
            new = _run(build_transform(cfg, train, augment), image, seed)
            assert type(new) is torch.Tensor and new.dtype == torch.float32
            assert torch.equal(new, _run(v1_reference(cfg, train, augment), image, seed))


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [64, 224])
def test_tensor_path_matches_pil_within_the_stated_tolerance(size, interpolation):
    cfg = DataConfig(image_size=size, interpolation=interpolation, std=STD)
    bound = TENSOR_TOLERANCE / 255 / min(STD) + 1e-6
    worst, means = 0.0, []
    for name in PHOTO_NAMES:
        image = Image.fromarray(load_photo(name))
        for train in (False, True):
            transform = build_transform(cfg, train)
            diff = (_run(transform, image, 1) - _run(transform, pil_to_tensor(image), 1)).abs()
            worst, means = max(worst, diff.max().item()), [*means, diff.mean().item()]
    assert worst <= bound, (worst, bound)
    assert sum(means) / len(means) < 1e-3


def test_blur_jpeg_takes_tensors_and_gives_the_same_pixels():
    image = Image.fromarray(load_photo("coffee")).resize((64, 48))
    augment = BlurJpeg(p=1.0)
    for seed in range(3):
        from_pil = _run(augment, image, seed)
        from_tensor = _run(augment, pil_to_tensor(image), seed)
        assert from_tensor.dtype == torch.uint8 and from_tensor.shape == (3, 48, 64)
        assert torch.equal(from_tensor, pil_to_tensor(from_pil))
    assert not torch.equal(_run(augment, pil_to_tensor(image), 0), pil_to_tensor(image))  # it changes pixels
