"""Frozen features are computed once across runs: a second run reuses them and gives the same numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import write_folder_protocol
from images import write_image

from bench.api import run
from bench.run.checks import CONTRACT_BATCH
from bench.run.runner import RunnerOptions

#: The cost record counts FLOPs on one blank image through a deep copy's forward pass.
FLOP_COUNT = 1

TINY = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


@pytest.fixture
def count_images(monkeypatch):
    from detectors.blocks.backbones import Backbone

    seen = []
    original = Backbone.forward

    def counting(self, x, *args, **kwargs):
        seen.append(x.shape[0])
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Backbone, "forward", counting)
    return seen


def test_a_second_run_reuses_every_feature_and_gives_the_same_numbers(tiny_protocol, tmp_path, count_images):
    opts = RunnerOptions(batch_size=16)
    cold = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "a", opts=opts)
    n_images = sum(d["n"] for d in cold["data"].values())
    assert sum(count_images) == n_images + 2 * CONTRACT_BATCH + FLOP_COUNT
    assert cold["runner"]["feature_cache"]["misses"] == n_images and cold["runner"]["feature_cache"]["hits"] == 0
    count_images.clear()
    # Another seed and another C grid: same features, so nothing is computed again.
    warm = run(tiny_protocol, "clip_linear", seed=1, overrides={**TINY, "c_values": [0.1, 1.0]},
               out_dir=tmp_path / "b", opts=RunnerOptions(batch_size=16))
    assert sum(count_images) == 2 * CONTRACT_BATCH + FLOP_COUNT  # only the contract check's and FLOP count's
    assert warm["runner"]["feature_cache"]["hits"] == n_images and warm["runner"]["feature_cache"]["misses"] == 0
    again = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "c", opts=opts)
    assert again["metrics"] == cold["metrics"] and again["selection"]["c"] == cold["selection"]["c"]
    count_images.clear()
    run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "d", opts=RunnerOptions(batch_size=16,
                                                                                                    cache=False))
    # Without the cache the validation threshold needs one more pass over val.
    assert sum(count_images) == n_images + cold["data"]["val"]["n"] + 2 * CONTRACT_BATCH + FLOP_COUNT


def test_a_changed_image_misses_alone_and_conversions_survive_the_cache(tmp_path, count_images):
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(4):
                mode = "L" if (split, label, i) == ("test", "1_fake", 0) else "RGB"
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40), seed=i + 7 * len(split),
                            mode=mode)
    proto = write_folder_protocol(tmp_path / "cached.yaml", "folder data for the cache test.")
    opts = RunnerOptions(batch_size=4)
    first = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "a", opts=opts)
    assert first["data"]["t"]["conversions"] == {"grayscale": 1}
    write_image(root / "ds" / "train" / "0_real" / "2.png", size=(40, 40), seed=99)  # new content
    count_images.clear()
    second = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "b", opts=RunnerOptions(batch_size=4))
    assert second["runner"]["feature_cache"]["misses"] == 1
    assert sum(count_images) == 1 + 2 * CONTRACT_BATCH + FLOP_COUNT
    assert second["data"]["t"]["conversions"] == {"grayscale": 1}  # recorded from the cache


def _folder(tmp_path, zero_byte=False):
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(4):
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40), seed=i + 7 * len(split + label))
    if zero_byte:
        (root / "ds" / "test" / "1_fake" / "3.png").write_bytes(b"")
    proto = write_folder_protocol(tmp_path / "cachedir.yaml", "folder data for the cache tests.")
    return proto, root


def test_a_warm_cache_with_a_skipped_file_reuses_the_rest(tmp_path, count_images):
    proto, root = _folder(tmp_path, zero_byte=True)
    opts = RunnerOptions(batch_size=4, skip_bad_images=True)
    first = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "a", opts=opts)
    count_images.clear()
    second = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "b", opts=opts)
    assert sum(count_images) == 2 * CONTRACT_BATCH + FLOP_COUNT  # every usable image came from the cache
    assert second["metrics"] == first["metrics"] and second["skipped_images"]["count"] == 1


def test_bf16_applies_to_frozen_features_with_and_without_the_cache(tiny_protocol, tmp_path):
    def scores(result, out):
        path = tmp_path / out / "tiny" / "clip_linear" / result["run_id"] / "predictions" / "peaks_p4.csv.gz"
        return pd.read_csv(path)["score"]

    fp32 = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "a", opts=RunnerOptions(batch_size=16))
    cached = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "b",
                 opts=RunnerOptions(batch_size=16, precision="bf16"))
    fresh = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "c",
                opts=RunnerOptions(batch_size=16, precision="bf16", cache=False))
    assert cached["runner"]["feature_cache"]["hits"] == 0  # bf16 features are not fp32's
    assert (scores(fp32, "a") - scores(cached, "b")).abs().max() > 1e-4  # bf16 was applied
    assert (scores(cached, "b") - scores(fresh, "c")).abs().max() < 1e-4  # with or without the cache


def test_a_changed_image_stores_only_its_own_features(tmp_path):
    from bench.cache.store import FeatureCache

    proto, root = _folder(tmp_path)
    run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "a", opts=RunnerOptions(batch_size=4))
    rows = sum(r["items"] for r in FeatureCache().info())
    write_image(root / "ds" / "train" / "0_real" / "1.png", size=(40, 40), seed=123)
    run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "b", opts=RunnerOptions(batch_size=4))
    assert sum(r["items"] for r in FeatureCache().info()) == rows + 2  # its features and its conversion record
