"""The ``univfd`` preset's data pipeline is UnivFD's: no resize at test, native-resolution crops in training."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from torchvision.transforms import RandomCrop, v2
from torchvision.transforms import functional as F

from bench.data.sources.photos import load_photo
from bench.plugin.factory import resolve_detector
from bench.plugin.transforms import BlurJpeg

LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline"}


def photo(width: int, height: int) -> Image.Image:
    return Image.fromarray(load_photo("chelsea")).resize((width, height))


def normalised(det, image: Image.Image) -> torch.Tensor:
    dc = det.data_config()
    return F.normalize(F.to_tensor(image), list(dc.mean), list(dc.std))


def test_evaluation_is_a_centre_crop_without_any_resize():
    det = resolve_detector("univfd", {**LITE0, "image_size": 24}).build()
    image = photo(50, 40)
    expected = normalised(det, F.center_crop(image, [24, 24]))
    assert torch.equal(det.transform(train=False)(image), expected)
    assert not any(isinstance(s, v2.Resize) for s in det.transform(train=False).transforms)


def test_clip_linear_keeps_its_resize_then_crop_evaluation():
    det = resolve_detector("clip_linear", {**LITE0, "image_size": 24}).build()
    steps = det.transform(train=False).transforms
    assert isinstance(steps[0], v2.Resize) and isinstance(steps[1], v2.CenterCrop)


def test_training_resizes_to_the_load_size_then_augments_then_crops_at_native_resolution():
    det = resolve_detector("univfd", {**LITE0, "image_size": 24, "load_size": 32}).build()
    steps = det.transform(train=True).transforms
    assert isinstance(steps[0], v2.Resize) and steps[0].size == [32]
    assert steps[0].interpolation == v2.InterpolationMode.BILINEAR
    assert isinstance(steps[1], BlurJpeg) and steps[1].p == 0.5
    assert (steps[1].blur_sigma, steps[1].jpeg_quality) == ((0.0, 3.0), (30, 100))
    assert isinstance(steps[2], RandomCrop) and isinstance(steps[3], v2.RandomHorizontalFlip)
    # Without blur/JPEG, a training sample is a 24-px window of the 32-px image, never a shrunk copy of it.
    det = resolve_detector("univfd", {**LITE0, "image_size": 24, "load_size": 32, "aug_prob": 0.0}).build()
    image = photo(32, 32)
    full = normalised(det, image)
    for seed in range(4):
        torch.manual_seed(seed)
        random.seed(seed)
        sample = det.transform(train=True)(image)
        windows = [full[:, y:y + 24, x:x + 24] for y in range(9) for x in range(9)]
        assert any(torch.equal(sample, w) or torch.equal(sample, w.flip(-1)) for w in windows), seed


def test_the_load_resize_takes_the_shorter_side_to_the_load_size():
    det = resolve_detector("univfd", {**LITE0, "image_size": 24, "load_size": 32, "aug_prob": 0.0}).build()
    resize = det.transform(train=True).transforms[0]
    assert resize(photo(64, 48)).size == (42, 32)  # torchvision truncates the longer side, as in the authors
    assert np.array_equal(np.asarray(resize(photo(42, 32))), np.asarray(photo(42, 32)))  # a no-op at the size


def test_bad_resize_setting_is_a_config_error():
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="resize"):
        resolve_detector("univfd", {**LITE0, "resize": "squash"}).build()
    with pytest.raises(ConfigError, match="load_size"):
        resolve_detector("univfd", {**LITE0, "load_size": -1}).build()


def test_show_prints_the_train_and_eval_transforms(capsys):
    code, out, _ = run_cli(["show", "detector", "univfd", "-o", "backbone=timm:tf_efficientnet_lite0@imagenet-offline"],
                           capsys)
    assert code == 0
    train, evaluation = out.split("# train transform:")[1].split("# eval transform:")
    assert "Resize(size=[256]" in train and "BlurJpeg(p=0.5" in train and "RandomCrop(size=(224, 224)" in train
    assert "CenterCrop(size=(224, 224))" in evaluation and "Resize" not in evaluation


def test_show_builds_without_weights_when_they_are_not_available_and_says_so(capsys):
    code, out, _ = run_cli(["show", "detector", "univfd", "-o", "backbone=timm:resnet18.a1_in1k"], capsys)
    assert code == 0 and "# train transform:" in out and "random init" in out
