"""Tests for the folder, manifest and hf data sources and for robust image decoding."""

from __future__ import annotations

import re

import numpy as np
import pytest
from images import BAD_KINDS, ODD_MODES, image_bytes, write_bad, write_image
from PIL import Image

from bench.data.base import TABLE_COLUMNS
from bench.data.sources.folder import FolderSource
from bench.data.sources.hf import HFSource
from bench.data.sources.manifest import ManifestSource
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


# -- symbolic links, files left out, paths leaving the data root --------------------------------------
@pytest.fixture
def linked(tmp_path):
    """A CNNDetection-like tree: 2 reals and 2 fakes per subset."""
    for subset in ("car", "cat"):
        for i in range(2):
            write_image(tmp_path / f"fs/train/{subset}/0_real/{i}.png", color=BLUE)
            write_image(tmp_path / f"fs/train/{subset}/1_fake/{i}.png", color=RED)
    return tmp_path


@pytest.mark.parametrize("link,target", [("train/car/1_fake/loop", ".."), ("train/car/1_fake/self", "."),
                                         ("train/dog", "."), ("train/car/1_fake/up", "../../..")])
def test_folder_refuses_links_into_their_own_path(linked, link, target):
    (linked / "fs" / link).symlink_to(target)
    with pytest.raises(DataError, match=rf"{re.escape(link)} is a symbolic link to .*on its own path"):
        FolderSource("fs", {"root": "fs"}, linked).select("train")


def test_folder_follows_links_that_do_not_loop_but_refuses_a_file_reached_twice(linked, tmp_path):
    elsewhere = tmp_path / "other_disk/horse"
    for i in range(2):
        write_image(elsewhere / f"0_real/{i}.png", color=BLUE)
        write_image(elsewhere / f"1_fake/{i}.png", color=RED)
    (linked / "fs/train/horse").symlink_to(elsewhere)  # a data root assembled from links keeps working
    table = FolderSource("fs", {"root": "fs"}, linked).select("train")
    assert len(table) == 12 and "horse/1_fake/0.png" in " ".join(table["id"])
    (linked / "fs/train/cat/1_fake/extra.png").symlink_to(linked / "fs/train/car/1_fake/0.png")
    with pytest.raises(DataError, match=r"train/car/1_fake/0.png and train/cat/1_fake/extra.png are the same file"):
        FolderSource("fs", {"root": "fs"}, linked).select("train")


def test_folder_counts_files_it_leaves_out(linked):
    base = linked / "fs/train/car"
    (base / "1_fake/notes.txt").write_text("x")
    (base / "1_fake/.DS_Store").write_text("x")
    (base / "1_fake/README").write_text("x")
    write_image(base / "stray.png")
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, BLUE)]
    frames[0].save(base / "1_fake/anim.gif", save_all=True, append_images=frames[1:])
    src = FolderSource("fs", {"root": "fs"}, linked)
    table = src.select("train")
    assert "train/car/1_fake/anim.gif" in set(table["id"])  # GIFs are read (first frame), not dropped
    assert src.load_with_info("train/car/1_fake/anim.gif")[1] == "animated_first_frame"
    assert src.ignored_files("train") == {
        "extension '.txt' not read": ["train/car/1_fake/notes.txt"],
        "hidden": ["train/car/1_fake/.DS_Store"],
        "image outside the layout (in a label level)": ["train/car/stray.png"],
        "no extension": ["train/car/1_fake/README"],
    }
    assert src.ignored_files("train", ["cat"]) == {}


@pytest.mark.parametrize("kind,spec,key", [
    ("folder", {"root": "../../elsewhere"}, "root"),
    ("folder", {"root": "/abs/data"}, "root"),
    ("manifest", {"path": "../index.csv"}, "path"),
    ("manifest", {"path": "ds/index.csv", "root": "ds/../../x"}, "root"),
    ("hf", {"path": "/abs/saved"}, "path"),
])
def test_spec_paths_may_not_leave_the_data_root(tmp_path, kind, spec, key):
    cls = {"folder": FolderSource, "manifest": ManifestSource, "hf": HFSource}[kind]
    with pytest.raises(ConfigError, match=rf"has {key} '{re.escape(spec[key])}', which leaves the data root.*"
                                          "allow_outside_root: true"):
        cls("s", spec, tmp_path)


def test_allow_outside_root_reads_there_on_purpose(tmp_path):
    write_image(tmp_path / "outside/d/a.png", color=RED)
    root = tmp_path / "root"
    root.mkdir()
    src = FolderSource("s", {"root": str(tmp_path / "outside/d"), "layout": "", "label": 1,
                             "allow_outside_root": True}, root)
    assert list(src.select("test")["id"]) == ["a.png"]
    (tmp_path / "outside/index.csv").write_text(f"path,label,split\n{tmp_path / 'outside/d/a.png'},1,test\n")
    spec = {"path": str(tmp_path / "outside/index.csv"), "allow_outside_root": True}
    manifest = ManifestSource("m", spec, root)
    item = manifest.select("test")["id"][0]
    assert _pixel(manifest.load(item)) == RED
    with pytest.raises(ConfigError, match="allow_outside_root must be true or false"):
        FolderSource("s", {"root": "d", "allow_outside_root": "yes"}, root)


# -- video ids, frame order, identity keys and cheap checks ----------------------------------------------
def test_bare_video_ids_shared_by_subsets_are_qualified_and_noted(tmp_path):
    lines = ["path,label,split,subset,group"]
    for subset, label in (("Deepfakes", 1), ("youtube", 0)):
        for frame in range(2):
            write_image(tmp_path / f"ds/{subset}/000/{frame}.png")
            lines.append(f"{subset}/000/{frame}.png,{label},test,{subset},000.mp4")
    src = ManifestSource("m", _manifest(tmp_path, lines), tmp_path)
    table = src.select("test")
    assert sorted(table["group"].unique()) == ["Deepfakes/000.mp4", "youtube/000.mp4"]
    assert len(src.notes) == 1 and "'000.mp4' in Deepfakes, youtube" in src.notes[0]
    lines = ["path,label,split,group", "a.png,0,test,v", "b.png,1,test,v"]
    with pytest.raises(DataError, match=r"1 video\(s\) with both real and fake frames \(e.g. group 'v'\)"):
        ManifestSource("m", _manifest(tmp_path, lines, "mixed.csv"), tmp_path).select("test")


def test_frames_per_group_orders_unpadded_frame_names_naturally(tmp_path):
    from bench.data.splits import resolve_split
    from bench.protocol import Split

    lines = ["path,label,split,group"] + [f"v/{i}.png,0,test,v" for i in range(11)]
    sources = {"m": ManifestSource("m", _manifest(tmp_path, lines), tmp_path)}
    resolved = resolve_split("t", Split(source="m", split="test", frames_per_group=3), sources)
    assert sorted(resolved.table["id"]) == ["v/0.png", "v/10.png", "v/5.png"]


def test_item_keys_identify_file_content_cheaply(tmp_path):
    import os

    write_image(tmp_path / "d/sub/a.png")
    src = FolderSource("s", {"root": "d", "layout": "", "label": 0}, tmp_path)
    table = src.select("test")
    (key,) = src.item_keys(table)
    st = os.stat(tmp_path / "d/sub/a.png")
    assert key == f"d/sub/a.png|{st.st_size}|{st.st_mtime_ns}"
    write_image(tmp_path / "d/sub/a.png", seed=5, size=(17, 16))
    assert src.item_keys(table) != [key]
    (tmp_path / "d/sub/a.png").unlink()
    assert src.item_keys(table) == ["d/sub/a.png|missing"]


def test_feature_cache_keys_name_each_rows_degradations_without_unset_keys(tmp_path):
    from bench.cache.features import item_keys
    from bench.data.splits import ResolvedSplit
    from bench.protocol import Perturb

    write_image(tmp_path / "d/a.png")
    src = FolderSource("s", {"root": "d", "layout": "", "label": 0}, tmp_path)
    table = src.select("test").assign(source="s")
    keys = []
    for ops in [(), (Perturb(jpeg=75),), (Perturb(jpeg=90),), (Perturb(chain="ai_genbench"),),
                (Perturb(chain="ai_genbench", seed=1),)]:
        (key,) = item_keys(ResolvedSplit("t", table.assign(ops=[ops]), {"s": src}))
        keys.append(key)
    assert len(set(keys)) == 5 and keys[1].endswith('|[{"jpeg": 75}]')  # a key added later at None changes nothing


def test_check_cheap_finds_what_needs_no_decoding(tmp_path):
    write_image(tmp_path / "d/ok.png")
    for kind, suffix in BAD_KINDS.items():
        write_bad(tmp_path / f"d/{kind}{suffix}", kind)
    src = FolderSource("s", {"root": "d", "layout": "", "label": 0}, tmp_path)
    table = src.select("test")
    (tmp_path / "d/ok.png").unlink()
    found = dict(src.check_cheap(table))
    assert set(found) == {"ok.png", "zero_byte.png", "random_bytes.png"}  # truncated files pass the header check
    assert "does not exist" in found["ok.png"] and "zero-byte" in found["zero_byte.png"]
    assert "no readable image header" in found["random_bytes.png"]


def test_hf_parquet_folder_loads_and_validation_is_val(tmp_path, hf_cache):
    datasets = hf_cache
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    (tmp_path / "pq/data").mkdir(parents=True)
    for split, n in (("train", 2), ("validation", 3)):
        ds = datasets.Dataset.from_dict(
            {"image": [{"bytes": image_bytes(color=RED if i % 2 else BLUE), "path": None} for i in range(n)],
             "label": [i % 2 for i in range(n)]}, features=features)
        ds.to_parquet(str(tmp_path / f"pq/data/{split}-00000-of-00001.parquet"))
    src = HFSource("h", {"path": "pq"}, tmp_path)
    table = src.select("val")  # no split_map needed for Hugging Face's "validation"
    assert list(table["label"]) == [0, 1, 0]
    assert [_pixel(src.load(i)) for i in table["id"]] == [BLUE, RED, BLUE]
    tensor, kind = src.load_tensor("val/1")
    assert kind == "none" and tuple(int(v) for v in tensor[:, 0, 0]) == RED
    keys = src.item_keys(table)
    assert len(set(keys)) == 3 and keys[0].startswith("hf|") and keys[0].endswith("|validation|0")
    assert src.check_cheap(table) == []
    # Raw bytes without Hugging Face's image feature are read as encoded images too.
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "raw").mkdir()
    pq.write_table(pa.table({"img": [image_bytes(color=RED), b"\x00junk"], "y": [1, 0]}), tmp_path / "raw/x.parquet")
    raw = HFSource("r", {"path": "raw", "image_column": "img", "label_column": "y", "loader": "parquet"}, tmp_path)
    assert _pixel(raw.load("train/0")) == RED
    assert [item for item, _ in raw.check_cheap(raw.select("train"))] == ["train/1"]


def test_hf_unloadable_folder_is_one_sentence(tmp_path, hf_cache):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad cannot be loaded with the 'parquet' loader \(.*\); check that it holds"):
        HFSource("h", {"path": "bad", "label_map": {"0": 0}}, tmp_path).select("test")
