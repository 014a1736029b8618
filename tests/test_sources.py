"""Tests for the folder, manifest and hf data sources and for robust image decoding."""

from __future__ import annotations

import re

import numpy as np
import pytest
from images import BAD_KINDS, ODD_MODES, image_bytes, write_bad, write_image

from bench.data.base import TABLE_COLUMNS
from bench.data.folder import FolderSource
from bench.data.hf import HFSource
from bench.data.manifest import ManifestSource
from bench.errors import ConfigError, DataError, ImageError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _pixel(img):
    return tuple(int(v) for v in np.asarray(img)[0, 0])


# -- folder -------------------------------------------------------------------------------------
@pytest.fixture
def forensynths(tmp_path):
    """CNNDetection layout: flat train subsets, and a test subset with class folders above the labels."""
    root = tmp_path / "forensynths"
    for subset in ("car", "cat"):
        for i in range(2):
            write_image(root / f"train/{subset}/0_real/{i}.png", color=BLUE)
            write_image(root / f"train/{subset}/1_fake/{i}.PNG", color=RED)
    for cls in ("airplane", "bird"):
        write_image(root / f"test/progan/{cls}/0_real/a.jpg", color=BLUE)
        write_image(root / f"test/progan/{cls}/1_fake/a.jpg", color=RED)
    (root / "train/car/0_real/notes.txt").write_text("not an image")
    return tmp_path


def test_folder_default_layout(forensynths):
    src = FolderSource("fs", {"type": "folder", "root": "forensynths"}, forensynths)
    table = src.select("train")
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 8
    assert list(table["id"]) == sorted(table["id"])
    assert table["id"].iloc[0] == "train/car/0_real/0.png"
    assert (table["group"] == table["id"]).all()
    assert set(table["split"]) == {"train"}
    assert table.groupby("subset")["label"].sum().to_dict() == {"car": 2, "cat": 2}
    for item_id, label in zip(table["id"], table["label"]):
        img = src.load(item_id)
        assert img.mode == "RGB"
        assert _pixel(img) == (RED if label else BLUE)
    assert list(src.select("train", ["cat"])["subset"].unique()) == ["cat"]


def test_folder_nested_class_dirs(forensynths):
    table = FolderSource("fs", {"root": "forensynths"}, forensynths).select("test", ["progan"])
    assert list(table["id"]) == [
        "test/progan/airplane/0_real/a.jpg",
        "test/progan/airplane/1_fake/a.jpg",
        "test/progan/bird/0_real/a.jpg",
        "test/progan/bird/1_fake/a.jpg",
    ]
    assert list(table["label"]) == [0, 1, 0, 1]
    assert set(table["subset"]) == {"progan"}


def test_folder_unknown_split_and_subset(forensynths):
    src = FolderSource("fs", {"root": "forensynths"}, forensynths)
    where = re.escape(str(forensynths / "forensynths"))
    with pytest.raises(DataError, match=rf"no split 'val' in {where}; it has: test, train"):
        src.select("val")
    with pytest.raises(DataError, match=r"no subset 'dog'.*it has: car, cat"):
        src.select("train", ["dog"])


def test_folder_genimage_names(tmp_path):
    for gen in ("sdv4", "wukong"):
        for split in ("train", "val"):
            write_image(tmp_path / f"genimage/{gen}/{split}/nature/n.png", color=BLUE)
            write_image(tmp_path / f"genimage/{gen}/{split}/ai/f.png", color=RED)
    spec = {"root": "genimage", "layout": "{subset}/{split}/{label}", "labels": {"nature": 0, "ai": 1}}
    table = FolderSource("genimage", spec, tmp_path).select("val")
    assert list(table["id"]) == [
        "sdv4/val/ai/f.png",
        "sdv4/val/nature/n.png",
        "wukong/val/ai/f.png",
        "wukong/val/nature/n.png",
    ]
    assert list(table["label"]) == [1, 0, 1, 0]
    assert list(table["subset"]) == ["sdv4", "sdv4", "wukong", "wukong"]
    # The default label names do not match nature/ai: the error names the directory and the key.
    with pytest.raises(
        DataError, match=r"sdv4/val/ai/f.png is not below a label directory \(0_real, 1_fake\).*'labels' key"
    ):
        FolderSource("genimage", {"root": "genimage", "layout": "{subset}/{split}/{label}"}, tmp_path).select(
            "val"
        )


def test_folder_unexpected_label_dir(forensynths):
    (forensynths / "forensynths/train/cat/2_other").mkdir()
    with pytest.raises(DataError, match=r"2_other.*'labels' key"):
        FolderSource("fs", {"root": "forensynths"}, forensynths).select("train")


def test_folder_flat_subsets(tmp_path):
    for subset in ("laion", "ldm_200"):
        for i in range(3):
            write_image(tmp_path / f"diffusion/{subset}/{i}.webp", seed=i)
    spec = {"root": "diffusion", "layout": "{subset}", "label": {"laion": "real", "ldm_200": "fake"}}
    src = FolderSource("univfd_diffusion", spec, tmp_path)
    table = src.select("test")
    assert len(table) == 6
    assert table.groupby("subset")["label"].unique().map(list).to_dict() == {"laion": [0], "ldm_200": [1]}
    assert set(table["split"]) == {"test"}
    with pytest.raises(DataError, match=r"one split, 'test'"):
        src.select("train")
    fakes = FolderSource("fakes", {"root": "diffusion/ldm_200", "layout": "", "label": 1}, tmp_path)
    with pytest.raises(ConfigError, match=r"\{label\} must be its last field"):
        FolderSource("x", {"root": "diffusion", "layout": "{label}/{subset}"}, tmp_path)
    with pytest.raises(ConfigError, match=r"needs 'label'"):
        FolderSource("x", {"root": "diffusion", "layout": "{subset}"}, tmp_path)
    flat = fakes.select("test")
    assert list(zip(flat["id"], flat["label"], flat["subset"])) == [
        (f"{i}.webp", 1, "fakes") for i in range(3)
    ]


def test_folder_label_only_layout(tmp_path):
    write_image(tmp_path / "d/real/a.png")
    write_image(tmp_path / "d/fake/b.png")
    spec = {"root": "d", "layout": "{label}", "labels": {"real": 0, "fake": 1}, "split": "val"}
    table = FolderSource("d", spec, tmp_path).select("val")
    assert list(zip(table["id"], table["label"], table["subset"])) == [
        ("fake/b.png", 1, "d"),
        ("real/a.png", 0, "d"),
    ]


def test_folder_missing_root(tmp_path):
    where = re.escape(str(tmp_path / "forensynths"))
    with pytest.raises(DataError, match=rf"at {where}, which does not exist.*--data-root"):
        FolderSource("fs", {"root": "forensynths"}, tmp_path).select("train")
    with pytest.raises(DataError, match="BENCH_DATA_ROOT"):
        FolderSource("fs", {"root": "forensynths"}, None).select("train")
    with pytest.raises(ConfigError, match="needs the key 'root'"):
        FolderSource("fs", {}, tmp_path)


# -- decoding: bad files and odd modes ---------------------------------------------------------------
def test_bad_images_raise_and_are_listed(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"d/ok{i}.jpg", seed=i)
    for kind, suffix in BAD_KINDS.items():
        write_bad(tmp_path / f"d/{kind}{suffix}", kind)
    src = FolderSource("d", {"root": "d", "layout": "", "label": 1}, tmp_path)
    table = src.select("test")
    assert len(table) == 3 + len(BAD_KINDS)
    for kind, suffix in BAD_KINDS.items():
        with pytest.raises(ImageError, match=f"{kind}"):
            src.load(f"{kind}{suffix}")
    bad = src.find_bad_images(table)
    assert sorted(item for item, _ in bad) == sorted(f"{k}{s}" for k, s in BAD_KINDS.items())
    assert all(reason for _, reason in bad)


def test_odd_modes_load_as_rgb(tmp_path):
    for i, (mode, suffix) in enumerate(ODD_MODES.items()):
        write_image(tmp_path / f"d/m{i}{suffix}", mode=mode, size=(12 + i, 10), seed=i)
    src = FolderSource("d", {"root": "d", "layout": "", "label": "real"}, tmp_path)
    table = src.select("test")
    assert len(table) == len(ODD_MODES)
    for i in range(len(ODD_MODES)):
        img = src.load(f"m{i}{list(ODD_MODES.values())[i]}")
        assert img.mode == "RGB"
        assert img.size == (12 + i, 10)


# -- manifest ------------------------------------------------------------------------------------
def _manifest(tmp_path, lines, name="index.csv"):
    (tmp_path / "ds").mkdir(exist_ok=True)
    (tmp_path / "ds" / name).write_text("\n".join(lines) + "\n")
    return {"type": "manifest", "path": f"ds/{name}"}


def test_manifest_round_trip(tmp_path):
    lines = ["path,label,split,subset,group"]
    for video in ("v1", "v2"):
        for frame in range(2):
            write_image(tmp_path / f"ds/frames/{video}/{frame}.png", color=RED if video == "v2" else BLUE)
            label = "fake" if video == "v2" else "0"
            lines.append(f"frames/{video}/{frame}.png,{label},{'test' if frame else 'train'},DF,{video}")
    write_image(tmp_path / "ds/frames/solo.png", color=BLUE)
    lines.append("frames/solo.png,real,train,,")
    src = ManifestSource("ffpp", _manifest(tmp_path, lines), tmp_path)
    train = src.select("train")
    assert list(train["id"]) == ["frames/solo.png", "frames/v1/0.png", "frames/v2/0.png"]
    assert list(train["label"]) == [0, 0, 1]
    assert list(train["subset"]) == ["ffpp", "DF", "DF"]
    assert list(train["group"]) == ["frames/solo.png", "v1", "v2"]
    assert list(src.select("test", ["DF"])["id"]) == ["frames/v1/1.png", "frames/v2/1.png"]
    for item_id, label in zip(train["id"], train["label"]):
        assert _pixel(src.load(item_id)) == (RED if label else BLUE)
    with pytest.raises(DataError, match=r"no split 'val'.*index.csv.*test, train"):
        src.select("val")
    with pytest.raises(DataError, match=r"no subset 'NT'"):
        src.select("train", ["NT"])


def test_manifest_root_and_jsonl(tmp_path):
    write_image(tmp_path / "images/a.png")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/index.jsonl").write_text('{"path": "a.png", "label": 1, "split": "test"}\n')
    src = ManifestSource("m", {"path": "meta/index.jsonl", "root": "images"}, tmp_path)
    table = src.select("test")
    assert list(zip(table["id"], table["label"], table["subset"], table["group"])) == [
        ("a.png", 1, "m", "a.png")
    ]
    assert src.load("a.png").size == (16, 16)


@pytest.mark.parametrize("bad_path", ["../outside.png", "/abs/x.png", "a/../../x.png"])
def test_manifest_rejects_escaping_paths(tmp_path, bad_path):
    spec = _manifest(tmp_path, ["path,label,split", "ok.png,0,test", f"{bad_path},1,test"])
    with pytest.raises(DataError, match=rf"row 2 .*{bad_path}.*leaves the image root"):
        ManifestSource("m", spec, tmp_path).select("test")


def test_manifest_validation(tmp_path):
    spec = _manifest(tmp_path, ["path,label,split", "a.png,0,test", "b.png,maybe,test"])
    with pytest.raises(DataError, match=r"row 2 .*'maybe'"):
        ManifestSource("m", spec, tmp_path).select("test")
    spec = _manifest(tmp_path, ["path,split", "a.png,test"], "nolabel.csv")
    with pytest.raises(DataError, match=r"lacks the column\(s\) label"):
        ManifestSource("m", spec, tmp_path).select("test")
    spec = _manifest(tmp_path, ["path,label,split", "a.png,0,test", "a.png,1,train"], "dup.csv")
    with pytest.raises(DataError, match=r"row 2 .*repeats path 'a.png' from row 1"):
        ManifestSource("m", spec, tmp_path).select("test")
    with pytest.raises(DataError, match=r"missing.csv.*does not exist"):
        ManifestSource("m", {"path": "ds/missing.csv"}, tmp_path).select("test")


# -- hf ------------------------------------------------------------------------------------------
@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    return datasets


def test_hf_save_to_disk(tmp_path, hf_cache):
    datasets = hf_cache
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["real", "fake"]),
            "gen": datasets.Value("string"),
        }
    )

    def split(n):
        return datasets.Dataset.from_dict(
            {
                "image": [
                    {"bytes": image_bytes(color=RED if i % 2 else BLUE), "path": None} for i in range(n)
                ],
                "label": [i % 2 for i in range(n)],
                "gen": ["sd" if i < 2 else "mj" for i in range(n)],
            },
            features=features,
        )

    datasets.DatasetDict({"train": split(4), "validation": split(3)}).save_to_disk(str(tmp_path / "saved"))

    with pytest.raises(ConfigError, match=r"\['real', 'fake'\].*label_map: \{real: 0, fake: 1\}"):
        HFSource("h", {"path": "saved"}, tmp_path).select("train")
    spec = {
        "path": "saved",
        "label_map": {"real": 0, "fake": 1},
        "split_map": {"val": "validation"},
        "subset_column": "gen",
    }
    src = HFSource("h", spec, tmp_path)
    table = src.select("val")
    assert list(table["id"]) == ["val/0", "val/1", "val/2"]
    assert list(table["label"]) == [0, 1, 0]
    assert list(table["subset"]) == ["sd", "sd", "mj"]
    assert [_pixel(src.load(i)) for i in table["id"]] == [BLUE, RED, BLUE]
    assert list(src.select("train", ["mj"])["id"]) == ["train/2", "train/3"]
    with pytest.raises(DataError, match=r"no split 'test'.*train, validation"):
        src.select("test")
    missing = re.escape(str(tmp_path / "absent"))
    with pytest.raises(DataError, match=rf"at {missing}, which does not exist"):
        HFSource("h", {"path": "absent", "loader": "disk"}, tmp_path).select("train")
    with pytest.raises(DataError, match=r"'nobody/nothing' is neither a directory.*local Hugging Face cache"):
        HFSource("h", {"path": "nobody/nothing", "loader": "hub"}, tmp_path).select("train")


def test_hf_plain_dataset_and_bad_bytes(tmp_path, hf_cache):
    datasets = hf_cache
    rows = [{"bytes": image_bytes(seed=1), "path": None}, {"bytes": b"\x00garbage", "path": None}]
    ds = datasets.Dataset.from_dict(
        {"img": rows, "y": [0, 1]},
        features=datasets.Features({"img": datasets.Image(), "y": datasets.Value("int64")}),
    )
    ds.save_to_disk(str(tmp_path / "plain"))
    src = HFSource("h", {"path": "plain", "image_column": "img", "label_column": "y"}, tmp_path)
    table = src.select("test")
    assert list(table["label"]) == [0, 1]
    assert src.load("test/0").size == (16, 16)
    with pytest.raises(ImageError, match="test/1"):
        src.load("test/1")
    assert [item for item, _ in src.find_bad_images(table)] == ["test/1"]


def test_hf_imagefolder_maps_fake_explicitly(tmp_path, hf_cache):
    for split in ("train", "test"):
        for i in range(2):
            write_image(tmp_path / f"imf/{split}/real/r{i}.png", color=BLUE)
            write_image(tmp_path / f"imf/{split}/fake/f{i}.png", color=RED)
    # imagefolder sorts class names, so fake would silently be 0 without a label_map.
    with pytest.raises(ConfigError, match=r"\['fake', 'real'\].*label_map: \{fake: 1, real: 0\}"):
        HFSource("imf", {"path": "imf"}, tmp_path).select("test")
    src = HFSource("imf", {"path": "imf", "label_map": {"real": 0, "fake": 1}}, tmp_path)
    table = src.select("test")
    assert len(table) == 4
    assert sorted(table["label"]) == [0, 0, 1, 1]
    for item_id, label in zip(table["id"], table["label"]):
        assert _pixel(src.load(item_id)) == (RED if label else BLUE)
