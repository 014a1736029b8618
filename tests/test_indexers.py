"""Tests for the dataset indexers: small trees that mirror each real layout, file names included."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from images import image_bytes

from bench.data.holdout import held_out
from bench.data.indexers import INDEXERS, default_manifest, index_dataset, layout_options
from bench.data.sources.manifest import ManifestSource
from bench.errors import ConfigError, DataError

PNG = image_bytes((8, 8), seed=1)


def touch(path: Path, data: bytes = PNG) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def video(directory: Path, n: int = 3) -> None:
    """Write ``n`` frames named like DeepfakeBench's (000.png, 001.png, ...)."""
    for i in range(n):
        touch(directory / f"{i:03d}.png")


def rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def load(manifest: Path, data_root: Path):
    """The manifest read back through the ``manifest`` source (which validates every row)."""
    return ManifestSource("m", {"path": manifest.relative_to(data_root).as_posix()}, data_root).table


# -- FaceForensics++ / DFD ----------------------------------------------------------------------
PAIRS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]


def make_ffpp(root: Path, frames: int = 3, splits_at: str = "splits", dfd: bool = True) -> Path:
    """A FaceForensics++ tree: 6 real videos, 6 fakes per method, official-style split files."""
    ff = root / "FaceForensics++"
    for split, pairs in PAIRS.items():
        touch(ff / splits_at / f"{split}.json", json.dumps(pairs).encode())
        for a, b in pairs:
            for vid in (a, b):
                video(ff / f"original_sequences/youtube/c23/frames/{vid}", frames)
            for method in METHODS:
                for vid in (f"{a}_{b}", f"{b}_{a}"):
                    video(ff / f"manipulated_sequences/{method}/c23/frames/{vid}", frames)
    if dfd:
        video(ff / "original_sequences/actors/c23/frames/01__exit_phone_room")
        video(ff / "manipulated_sequences/DeepFakeDetection/c23/frames/01_02__exit_phone_room__YVGY8LOK")
    return ff


def test_ffpp_official_splits_and_video_ids(tmp_path):
    ff = make_ffpp(tmp_path)
    out = index_dataset("ffpp", ff)
    assert out == ff / "index.csv"
    table = load(out, tmp_path)
    assert len(table) == 6 * 5 * 3
    videos = table.groupby(["split", "label"])["group"].nunique().to_dict()
    assert videos == {("train", 0): 2, ("train", 1): 8, ("val", 0): 2, ("val", 1): 8, ("test", 0): 2, ("test", 1): 8}
    # Same folder name under two methods: two different videos.
    groups = set(table["group"])
    assert "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_001" in groups
    assert "FaceForensics++/manipulated_sequences/Face2Face/c23/frames/000_001" in groups
    assert set(table["subset"]) == {"youtube", *METHODS}
    assert table["id"].iloc[0].startswith("manipulated_sequences/")
    assert not table["subset"].isin(["actors", "DeepFakeDetection"]).any()


def test_ffpp_splits_in_root_like_deepfakebench(tmp_path):
    ff = make_ffpp(tmp_path, splits_at=".")
    assert len(rows(index_dataset("ffpp", ff))) == 90


def test_ffpp_missing_splits_say_where_to_get_them(tmp_path):
    ff = make_ffpp(tmp_path)
    for f in (ff / "splits").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="github.com/ondyari/FaceForensics"):
        index_dataset("ffpp", ff)


def test_a_video_listed_in_two_split_files_is_refused(tmp_path):
    ff = make_ffpp(tmp_path)
    touch(ff / "splits/test.json", json.dumps([["004", "005"], ["001", "006"]]).encode())  # 001 is in train
    with pytest.raises(DataError, match=r"video 001 .*train.json.*test.json"):
        index_dataset("ffpp", ff)
    root = tmp_path / "DeeperForensics-1.0"
    for split in ("train", "val", "test"):
        touch(root / f"lists/splits/{split}.txt", b"000_M101.mp4\n" if split != "val" else b"")
    video(root / "manipulated_videos/end_to_end/frames/000_M101")
    with pytest.raises(DataError, match=r"000_M101 .*train.txt.*test.txt"):
        index_dataset("deeperforensics", root)


def test_ffpp_wrong_compression_lists_what_exists(tmp_path):
    with pytest.raises(DataError, match="c23"):
        index_dataset("ffpp", make_ffpp(tmp_path), compression="c40")


def test_dfd(tmp_path):
    ff = make_ffpp(tmp_path)
    out = index_dataset("dfd", ff)
    assert out == ff / "index_dfd.csv" == default_manifest("dfd", ff)
    table = load(out, tmp_path)
    assert set(table["split"]) == {"test"}
    assert table.groupby("subset")["label"].max().to_dict() == {"actors": 0, "DeepFakeDetection": 1}


def test_never_overwrites_without_the_flag(tmp_path):
    ff = make_ffpp(tmp_path)
    index_dataset("ffpp", ff)
    with pytest.raises(ConfigError, match="--overwrite"):
        index_dataset("ffpp", ff)
    index_dataset("ffpp", ff, overwrite=True)


def test_manifest_above_root_and_outside_root(tmp_path):
    ff = make_ffpp(tmp_path)
    out = index_dataset("dfd", ff, tmp_path / "dfd.csv")
    assert rows(out)[0]["path"].startswith("FaceForensics++/")
    assert len(load(out, tmp_path)) == 6
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match="directory above it"):
        index_dataset("dfd", ff, tmp_path / "elsewhere" / "x.csv")


def test_unknown_layout_and_option(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'ffpp'"):
        index_dataset("ffp", tmp_path)
    with pytest.raises(ConfigError, match="no option 'frames'"):
        index_dataset("ffpp", tmp_path, frames=3)
    assert set(layout_options("ffpp")) == {"splits", "compression"}


# -- DeepfakeBench JSON -------------------------------------------------------------------------
def test_deepfakebench_json_matches_native_index(tmp_path):
    ff = make_ffpp(tmp_path, dfd=False)
    native = rows(index_dataset("ffpp", ff, tmp_path / "native.csv"))
    labels = {"youtube": "FF-real", "Deepfakes": "FF-DF", "Face2Face": "FF-F2F", "FaceSwap": "FF-FS",
              "NeuralTextures": "FF-NT"}
    data: dict = {"FaceForensics++": {}}
    for r in native:
        kind = "original_sequences" if r["subset"] == "youtube" else "manipulated_sequences"
        assert r["path"].startswith(f"FaceForensics++/{kind}/")
        node = data["FaceForensics++"].setdefault(labels[r["subset"]], {}).setdefault(r["split"], {})
        vid = node.setdefault("c23", {}).setdefault(r["group"].rsplit("/", 1)[1], {"label": labels[r["subset"]],
                                                                                   "frames": []})
        # The released files use Windows separators and a prefix from the author's machine.
        vid["frames"].append("./datasets/rgb\\" + r["path"].replace("/", "\\"))
        node.setdefault("c40", {})
    touch(tmp_path / "FaceForensics++.json", json.dumps(data).encode())
    out = index_dataset("deepfakebench", ff, json=[tmp_path / "FaceForensics++.json"])
    from_json = rows(out)
    assert [(r["path"], r["label"], r["split"], r["subset"], r["group"]) for r in from_json] == \
        [(r["path"].removeprefix("FaceForensics++/"), r["label"], r["split"], r["subset"], r["group"]) for r in native]


def test_deepfakebench_frame_keeps_test_over_train(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    video(root / "Celeb-real/frames/id0_0000", 2)
    video(root / "Celeb-synthesis/frames/id0_id1_0000", 2)
    frames = {v: [f"Celeb-DF-v2/{d}/frames/{v}/{i:03d}.png" for i in range(2)]
              for d, v in [("Celeb-real", "id0_0000"), ("Celeb-synthesis", "id0_id1_0000")]}
    data = {"Celeb-DF-v2": {
        "CelebDFv2_real": {"train": {"id0_0000": {"label": "CelebDFv2_real", "frames": frames["id0_0000"]}},
                           "test": {"id0_0000": {"label": "CelebDFv2_real", "frames": frames["id0_0000"]}}},
        "CelebDFv2_fake": {"train": {"id0_id1_0000": {"label": "CelebDFv2_fake", "frames": frames["id0_id1_0000"]}},
                           "val": {"label": "CelebDFv2_fake", "frames": frames["id0_id1_0000"]}}}}
    touch(tmp_path / "Celeb-DF-v2.json", json.dumps(data).encode())
    table = load(index_dataset("deepfakebench", root, json=tmp_path / "Celeb-DF-v2.json"), tmp_path)
    assert table.groupby("subset")[["split", "label"]].first().to_dict("index") == {
        "Celeb-real": {"split": "test", "label": 0}, "Celeb-synthesis": {"split": "train", "label": 1}}


# -- Celeb-DF, DFDC, DFDC-P, DeeperForensics, UADFV ---------------------------------------------
def test_celebdf_test_list(tmp_path):
    root = tmp_path / "Celeb-DF-v1"
    for folder, vid in [("Celeb-real", "id0_0000"), ("Celeb-real", "id1_0001"), ("YouTube-real", "00170"),
                        ("Celeb-synthesis", "id0_id1_0000"), ("Celeb-synthesis", "id1_id0_0001")]:
        video(root / folder / "frames" / vid)
    touch(root / "List_of_testing_videos.txt", b"1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id1_id0_0001.mp4\n")
    table = load(index_dataset("celebdf", root), tmp_path)
    test = table[table["split"] == "test"]
    assert sorted(test["group"].unique()) == ["Celeb-DF-v1/Celeb-synthesis/frames/id1_id0_0001",
                                             "Celeb-DF-v1/YouTube-real/frames/00170"]
    assert test.groupby("label")["group"].nunique().to_dict() == {0: 1, 1: 1}
    assert table[table["split"] == "train"]["group"].nunique() == 3


def test_dfdc_labels_csv_and_missing_frames(tmp_path):
    root = tmp_path / "DFDC"
    touch(root / "test/labels.csv", b"filename,label\naaqaifqrwn.mp4,0\naayfryxljh.mp4,1\nnofaceabc.mp4,1\n")
    video(root / "test/frames/aaqaifqrwn")
    video(root / "test/frames/aayfryxljh")
    touch(root / "train/dfdc_train_part_0/metadata.json",
          json.dumps({"abc.mp4": {"label": "FAKE", "split": "train", "original": "xyz.mp4"}}).encode())
    video(root / "train/dfdc_train_part_0/frames/abc")
    table = load(index_dataset("dfdc", root), tmp_path)
    assert table.groupby(["split", "label"])["group"].nunique().to_dict() == {
        ("test", 0): 1, ("test", 1): 1, ("train", 1): 1}


def test_dfdcp_dataset_json(tmp_path):
    root = tmp_path / "DFDCP"
    meta = {"method_A/643049/643049_A/1955670_B.mp4": {"label": "fake", "set": "test"},
            "original_videos/643049/643049_A_001.mp4": {"label": "real", "set": "train"},
            "method_B/1224068/1224068_B/00000.mp4": {"label": "fake", "set": "train"}}
    touch(root / "dataset.json", json.dumps(meta).encode())
    video(root / "method_A/frames/1955670_B")
    video(root / "original_videos/frames/643049_A_001")
    video(root / "method_B/1224068/1224068_B/00000")  # frames beside the video instead
    table = load(index_dataset("dfdcp", root), tmp_path)
    assert table.groupby(["subset", "split"])["label"].max().to_dict() == {
        ("method_A", "test"): 1, ("method_B", "train"): 1, ("original_videos", "train"): 0}


def test_deeperforensics_and_uadfv(tmp_path):
    root = tmp_path / "DeeperForensics-1.0"
    for split, name in [("train", "000_M101"), ("test", "001_W101")]:
        touch(root / f"lists/splits/{split}.txt", f"{name}.mp4\n".encode())
        video(root / f"manipulated_videos/end_to_end/frames/{name}")
    touch(root / "lists/splits/val.txt", b"")
    video(root / "source_videos/M004/frames/M004_light_uniform_angry_camera_front")
    table = load(index_dataset("deeperforensics", root), tmp_path)
    assert table.groupby(["split", "label"])["group"].nunique().to_dict() == {
        ("test", 0): 1, ("test", 1): 1, ("train", 1): 1}
    uadfv = tmp_path / "UADFV"
    video(uadfv / "real/frames/0000")
    video(uadfv / "fake/frames/0000_fake")
    table = load(index_dataset("uadfv", uadfv), tmp_path)
    assert table.groupby("label")["group"].nunique().to_dict() == {0: 1, 1: 1}


# -- still images -------------------------------------------------------------------------------
def test_forensynths_classes_and_sets(tmp_path):
    root = tmp_path / "CNNDetection"
    for split in ("train", "val"):
        for cls in ("car", "cat"):
            touch(root / f"{split}/{cls}/0_real/00001.png")
            touch(root / f"{split}/{cls}/1_fake/00001.png")
    for cls in ("airplane", "bicycle"):
        touch(root / f"test/progan/{cls}/0_real/00001.png")
        touch(root / f"test/progan/{cls}/1_fake/00001.png")
    touch(root / "test/seeingdark/0_real/0001.png")
    touch(root / "test/seeingdark/1_fake/0001.png")
    table = load(index_dataset("forensynths", root), tmp_path)
    assert table.groupby("split")["subset"].unique().apply(sorted).to_dict() == {
        "test": ["progan", "seeingdark"], "train": ["car", "cat"], "val": ["car", "cat"]}
    assert (table["group"] == table["id"]).all()
    touch(root / "test/biggan/stray.png")
    with pytest.raises(DataError, match="not below a 0_real or 1_fake"):
        index_dataset("forensynths", root, overwrite=True)


def test_univfd_diffusion(tmp_path):
    root = tmp_path / "diffusion_datasets"
    for folder in ("laion/0_real", "imagenet/0_real", "guided/1_fake", "ldm_200/1_fake", "dalle"):
        touch(root / folder / "000.png")
    table = load(index_dataset("univfd_diffusion", root), tmp_path)
    assert table.set_index("subset")["label"].to_dict() == {
        "dalle": 1, "guided": 1, "imagenet": 0, "laion": 0, "ldm_200": 1}
    assert set(table["split"]) == {"test"}


def test_genimage_canonical_names(tmp_path):
    root = tmp_path / "GenImage"
    for top, inner in [("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4"), ("ADM", "imagenet_ai_0508_adm"),
                       ("Midjourney", None)]:
        base = root / top / inner if inner else root / top
        for split in ("train", "val"):
            touch(base / split / "ai" / "b.png")
            touch(base / split / "nature" / "n01440764_1.JPEG")
    table = load(index_dataset("genimage", root), tmp_path)
    assert sorted(table["subset"].unique()) == ["adm", "midjourney", "sd_v1_4"]
    # GenImage's val folder is its test set; b.png and n01440764_1.JPEG are not in the held-out tenth.
    assert table.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 3, ("test", 1): 3, ("train", 0): 3, ("train", 1): 3}


def test_genimage_holds_out_a_tenth_of_train_for_selection(tmp_path):
    root = tmp_path / "GenImage"
    for i in range(60):
        touch(root / "ADM" / "train" / "ai" / f"{i:03d}.png")
        touch(root / "ADM" / "val" / "ai" / f"{i:03d}.png")
        touch(root / "ADM" / "val" / "nature" / f"n{i:03d}.JPEG")
    table = load(index_dataset("genimage", root), tmp_path)
    from_train = table[table["id"].str.contains("/train/")]
    expected = {f"{i:03d}" for i in range(60) if held_out(f"{i:03d}")}
    assert 0 < len(expected) < 20  # a tenth, by a fixed function of the file stem
    assert {Path(i).stem for i in from_train.loc[from_train["split"] == "val", "id"]} == expected
    assert set(from_train["split"]) == {"train", "val"}
    assert set(table.loc[table["id"].str.contains("/val/"), "split"]) == {"test"}


def test_every_layout_is_tested():
    tested = {"ffpp", "dfd", "deepfakebench", "celebdf", "dfdc", "dfdcp", "deeperforensics", "uadfv",
              "forensynths", "univfd_diffusion", "genimage",
              "real_fake_sets", "df40", "drct2m"}  # the last three in test_indexers_releases.py
    assert set(INDEXERS) == tested


# -- a folder without the layout is refused, naming the folder expected ----------------------------------
def test_univfd_diffusion_refuses_the_data_root_and_a_folder_one_level_too_high(tmp_path):
    root = tmp_path / "data/diffusion_datasets"
    for folder in ("laion/0_real", "guided/1_fake"):
        touch(root / folder / "000.png")
    touch(tmp_path / "data/CNNDetection/test/progan/car/1_fake/0.png")
    with pytest.raises(DataError, match=r"CNNDetection holds neither 0_real/1_fake folders nor images.*not UnivFD.*"
                                        r"data/diffusion_datasets looks like the dataset folder: pass it as ROOT"):
        index_dataset("univfd_diffusion", tmp_path / "data")
    touch(tmp_path / "up/diffusion_datasets/guided/1_fake/0.png")
    with pytest.raises(DataError, match=r"up/diffusion_datasets looks like the dataset folder: pass it as ROOT"):
        index_dataset("univfd_diffusion", tmp_path / "up")
    touch(root / "guided/extra/1.png")
    with pytest.raises(DataError, match=r"guided/extra/1.png is outside the 0_real/1_fake folders"):
        index_dataset("univfd_diffusion", root)


def test_genimage_refuses_a_folder_one_level_too_high(tmp_path):
    root = tmp_path / "GenImage"
    for split in ("train", "val"):
        touch(root / f"ADM/imagenet_ai_0508_adm/{split}/ai/a.png")
        touch(root / f"Midjourney/{split}/nature/n.JPEG")
    with pytest.raises(DataError, match=r"holds no GenImage generator folder.*GenImage is none.*GenImage looks like "
                                        "the dataset folder: pass it as ROOT"):
        index_dataset("genimage", tmp_path)
    touch(root / "BigGAN/train/fake/f.png")
    with pytest.raises(DataError, match=r"BigGAN/train holds fake instead of ai and nature folders"):
        index_dataset("genimage", root)


def test_forensynths_and_deepfakebench_name_the_folder_expected(tmp_path):
    touch(tmp_path / "data/CNNDetection/train/car/0_real/1.png")
    with pytest.raises(DataError, match=r"no train, val or test folder.*CNNDetection looks like the dataset folder"):
        index_dataset("forensynths", tmp_path / "data")
    listing = tmp_path / "FaceForensics++.json"
    listing.write_text(json.dumps({"FF": {"FF-real": {"test": {"c23": {"000": {
        "label": "FF-real", "frames": ["rgb/FaceForensics++/original_sequences/youtube/c23/frames/000/000.png"]}}}}}}))
    video(tmp_path / "rgb/FaceForensics++/original_sequences/youtube/c23/frames/000")
    (tmp_path / "Celeb-DF-v2").mkdir()
    with pytest.raises(DataError, match=r"None of the frames listed in .* exists under .*Celeb-DF-v2; ROOT must be"):
        index_dataset("deepfakebench", tmp_path / "Celeb-DF-v2", json=listing)
    assert index_dataset("deepfakebench", tmp_path / "rgb/FaceForensics++", json=listing).is_file()
