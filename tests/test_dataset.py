"""Tests for ``RawDataset``'s sample contract: keys and types, conversions, bad files skipped or named,
tensor input, sample builders with per-row seeding, and extras such as landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from images import write_bad, write_image
from PIL import Image
from torch.utils.data import DataLoader

from bench.data.dataset import RawDataset, collate_samples
from bench.data.decode import CONVERSIONS
from bench.data.sources.folder import FolderSource
from bench.data.sources.manifest import ManifestSource
from bench.data.splits import ResolvedSplit
from bench.errors import ConfigError, ImageError
from bench.plugin.transforms import build_transform
from bench.plugin.types import DataConfig
from bench.protocol import Perturb

CFG = DataConfig(image_size=16)


def split_of(source, split: str = "test", ops: dict[str, tuple] | None = None) -> ResolvedSplit:
    table = source.select(split)
    table["source"] = source.name
    table["ops"] = [(ops or {}).get(i, ()) for i in table["id"]]
    return ResolvedSplit(split, table, {source.name: source})


@pytest.fixture
def folder(tmp_path):
    """Five images (two formats, one grey, one 16-bit) and one truncated file, all fake."""
    for i in range(2):
        write_image(tmp_path / f"d/a{i}.jpg", size=(20, 18), seed=i)
        write_image(tmp_path / f"d/b{i}.png", size=(18, 20), seed=10 + i)
    write_image(tmp_path / "d/c_grey.png", mode="L", size=(17, 17), seed=3)
    write_image(tmp_path / "d/c_sixteen.png", mode="I;16", size=(17, 17), seed=4)
    write_bad(tmp_path / "d/z_bad.png", "truncated_png")
    return FolderSource("d", {"root": "d", "layout": "", "label": 1}, tmp_path)


def test_sample_contract_and_conversions(folder):
    data = RawDataset(split_of(folder), build_transform(CFG, train=False), skip={6})
    assert len(data) == 6
    sample = data[0]
    assert set(sample) == {"image", "label", "index", "valid", "conversion"}
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32
    assert [sample[k].dtype for k in ("label", "index", "valid", "conversion")] == \
        [torch.int64, torch.int64, torch.bool, torch.int64]
    kinds = {data.split.table["id"][int(s["index"])]: CONVERSIONS[int(s["conversion"])] for s in data}
    assert kinds == {"a0.jpg": "none", "a1.jpg": "none", "b0.png": "none", "b1.png": "none",
                     "c_grey.png": "grayscale", "c_sixteen.png": "16bit"}
    batch = next(iter(DataLoader(data, batch_size=6)))
    assert batch["valid"].all() and batch["index"].tolist() == list(range(6))


def test_bad_file_raises_naming_it_or_is_masked(folder):
    split = split_of(folder)
    with pytest.raises(ImageError, match="z_bad.png"):
        RawDataset(split, build_transform(CFG, train=False))[6]
    data = RawDataset(split, build_transform(CFG, train=False), skip_bad=True)
    bad = data[6]
    assert not bad["valid"] and int(bad["index"]) == 6 and int(bad["label"]) == 1
    assert bad["image"].shape == (3, 16, 16) and not bad["image"].any()
    batch = next(iter(DataLoader(data, batch_size=7)))  # the batch keeps its size; the runner masks
    assert batch["valid"].tolist() == [True] * 6 + [False]


def test_positional_use_and_seeded_augmentation_do_not_depend_on_order(folder):
    split = split_of(folder)
    data = RawDataset(split, build_transform(CFG, train=True), {6}, 5)
    forward = [data[i]["image"] for i in range(len(data))]
    backward = [data[i]["image"] for i in reversed(range(len(data)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    data.epoch = 1
    assert not all(torch.equal(a, data[i]["image"]) for i, a in enumerate(forward))


def test_tensor_input_matches_pil_input(folder):
    ops = {"b0.png": (Perturb(jpeg=70),)}  # a perturbed row is decoded and perturbed with PIL first
    split = split_of(folder, ops=ops)
    seen = []

    def spy(image):
        seen.append(type(image))
        return build_transform(CFG, train=True)(image)

    pil = RawDataset(split, build_transform(CFG, train=True), {6}, seed=2)
    tensor = RawDataset(split, spy, {6}, seed=2, tensor_input=True)
    for i in range(len(pil)):
        a, b = pil[i], tensor[i]
        assert torch.equal(a["conversion"], b["conversion"])
        assert (a["image"] - b["image"]).abs().max() <= 2 / 255 / 0.5 + 1e-6
    assert set(seen) == {torch.Tensor}


def test_sample_builder_makes_k_samples_in_the_rows_seeded_context(folder):
    seen_extras = []

    def builder(image, label, extras):
        seen_extras.append(extras)
        if extras["id"].startswith("b"):
            return []  # rows mapped to nothing are dropped
        # NumPy's global RNG: seeded per row by the dataset.
        noise = np.random.randint(0, 256, (image.height, image.width, 3), dtype=np.uint8)
        return [(image, label), (Image.fromarray(noise), 0)]

    split = split_of(folder)
    data = RawDataset(split, build_transform(CFG, train=True), {6}, seed=1, sample_builder=builder)
    first = data[0]
    assert first["image"].shape == (2, 3, 16, 16) and first["label"].tolist() == [1, 0]
    assert first["index"].tolist() == [0, 0] and first["valid"].tolist() == [True, True]
    assert torch.equal(data[0]["image"], first["image"])  # same (seed, epoch, row): same noise
    assert data[2]["image"].shape == (0, 3, 16, 16)
    assert seen_extras[0] == {"id": "a0.jpg", "source": "d"}
    batch = next(iter(DataLoader(data, batch_size=4, collate_fn=collate_samples)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["index"].tolist() == [0, 0, 1, 1]


def test_sample_builder_with_a_bad_file_yields_one_masked_sample(folder):
    data = RawDataset(split_of(folder), build_transform(CFG, train=False), skip_bad=True,
                      sample_builder=lambda image, label, extras: [(image, label)] * 3)
    bad = data[6]
    assert bad["image"].shape == (1, 3, 16, 16) and bad["valid"].tolist() == [False]


def test_landmarks_reach_the_sample_builder(tmp_path):
    write_image(tmp_path / "ds/f/0.png")
    write_image(tmp_path / "ds/f/1.png")
    (tmp_path / "ds/lm").mkdir()
    np.save(tmp_path / "ds/lm/0.npy", np.arange(10, dtype=np.float64).reshape(5, 2))
    (tmp_path / "ds/index.csv").write_text(
        "path,label,split,landmarks\nf/0.png,0,test,lm/0.npy\nf/1.png,0,test,\n")
    source = ManifestSource("m", {"path": "ds/index.csv"}, tmp_path)
    got = []
    RawDataset(split_of(source), build_transform(CFG, train=False),
               sample_builder=lambda image, label, extras: got.append(extras) or [(image, label)])[0]
    assert got[0]["landmarks"].dtype == np.float32 and got[0]["landmarks"].shape == (5, 2)
    assert source.extras("f/1.png") == {}


def test_bad_options_are_refused(folder):
    with pytest.raises(ConfigError, match="decode must be one of cpu, gpu"):
        RawDataset(split_of(folder), build_transform(CFG, train=False), decode="nvjpeg")
    with pytest.raises(ConfigError, match="sample builder"):
        RawDataset(split_of(folder), build_transform(CFG, train=False), decode="gpu",
                   sample_builder=lambda image, label, extras: [])
