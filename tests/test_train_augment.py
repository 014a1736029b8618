"""Tests for detectors/blocks/train_augment.py: the published training augmentations run, keep sizes, are seeded."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from detectors.blocks.train_augment import BlurJpegChoice, DeepfakeBenchFaceAugment, gend_augment, jpeg


def image(size=48):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def seeded(augment, img, seed):
    random.seed(seed)
    torch.manual_seed(seed)
    return np.asarray(augment(img))


@pytest.mark.parametrize("augment", [DeepfakeBenchFaceAugment(), gend_augment(), BlurJpegChoice()],
                         ids=["effort_face", "gend", "rine"])
def test_augmentations_keep_the_size_and_repeat_under_the_same_seed(augment):
    img = image()
    outs = [seeded(augment, img, s) for s in range(12)]
    assert all(o.shape == (48, 48, 3) and o.dtype == np.uint8 for o in outs)
    np.testing.assert_array_equal(seeded(augment, img, 3), outs[3])
    assert any(not np.array_equal(o, np.asarray(img)) for o in outs)  # the pipeline does something


def test_rine_jpeg_uses_only_the_two_published_qualities(monkeypatch):
    used = []
    monkeypatch.setattr("detectors.blocks.train_augment.jpeg", lambda img, q: used.append(q) or img)
    augment = BlurJpegChoice(p=1.0, sigma=(0.0, 0.0))
    for s in range(20):
        seeded(augment, image(16), s)
    assert set(used) == {30, 100}


def test_jpeg_round_trip_degrades_at_low_quality():
    img = image()
    err = [np.abs(np.asarray(jpeg(img, q), dtype=float) - np.asarray(img)).mean() for q in (10, 95)]
    assert err[0] > err[1] > 0


def test_rine_blur_is_the_authors_truncating_uint8_blur():
    from scipy.ndimage import gaussian_filter1d

    img = image(40)
    out = seeded(BlurJpegChoice(p=1.0, sigma=(2.0, 2.0), qualities=(100,)), img, 0)
    # scipy's passes written into the uint8 image (RINE's in-place call): each pass floors; then JPEG q 100.
    ref = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        ref = np.floor(gaussian_filter1d(ref, 2.0, axis=axis, mode="reflect"))
    np.testing.assert_array_equal(out, np.asarray(jpeg(Image.fromarray(ref.astype(np.uint8)), 100)))
