"""The shipped real-data protocols: they validate, fail clearly without data, and resolve on indexed mini trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from images import image_bytes

from bench.data.indexers import INDEXERS, index_dataset
from bench.data.splits import build_sources, resolve_all
from bench.errors import DataError
from bench.protocol import catalog, load_protocol, protocol_files

PNG = image_bytes((8, 8), seed=2)
REAL = ["cross_domain", "cross_domain_extended", "universal", "universal_4class", "universal_jpeg75",
        "universal_blur1", "genimage", "genimage_aligned", "df40_fs", "df40_fr", "df40_efs", "df40_p4",
        "forensynths13", "forensynths13_nocrop", "forensynths8_npr", "aigcdetect16", "aigcdetect16_jpeg95",
        "aigcdetect16_blur1", "aigcdetect16_resize50", "genimage_degraded", "drct2m", "drct2m_genimage",
        "in_the_wild"]


def video(directory: Path, n: int = 3) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (directory / f"{i:03d}.png").write_bytes(PNG)


@pytest.mark.parametrize("name", sorted(protocol_files()))
def test_every_shipped_protocol_validates(name):
    assert load_protocol(name).name == name


def test_real_protocols_are_shipped_and_use_catalog_sources():
    assert set(REAL) <= set(protocol_files())
    known = catalog()
    for name in REAL:
        for spec in load_protocol(name).sources.values():
            assert isinstance(spec, str) and spec in known


def test_catalog_entries_say_how_to_get_and_index():
    for name, entry in catalog().items():
        about = entry["about"]
        assert {"dataset", "get", "layout"} <= set(about), name
        assert about["get"].startswith("https://"), name
        if entry["type"] == "hf":  # saved with datasets' save_to_disk where the source reads it
            assert "index" not in about and f"save_to_disk('<data-root>/{entry['path']}')" in about["download"], name
            continue
        if entry["type"] == "ai_genbench":  # built by AI-GenBench's script into <output_path>/ai_gen_bench_v1.0.0
            path = Path(entry["path"])
            assert "index" not in about and path.name == "ai_gen_bench_v1.0.0", name
            assert f"output_path = <data-root>/{path.parent.as_posix()} " in about["download"], name
            continue
        command = about["index"].split()
        assert command[:3] == ["bench", "data", "index"] and command[3] in INDEXERS, name
        # The index command's directory is the one holding the manifest.
        assert command[4] == "<data-root>/" + Path(entry["path"]).parent.as_posix(), name


def test_missing_data_message(tmp_path):
    from bench.api import run

    with pytest.raises(DataError) as err:
        run("cross_domain", "clip_linear", data_root=tmp_path, out_dir=tmp_path / "runs")
    message = str(err.value)
    assert "FaceForensics++" in message
    assert str(tmp_path / "FaceForensics++" / "index.csv") in message
    assert "original_sequences/youtube" in message
    assert "bench data index ffpp <data-root>/FaceForensics++" in message
    assert "synthetic_cross_domain" in message


# -- cross_domain on an indexed mini tree --------------------------------------------------------
def make_face_root(root: Path) -> None:
    ff = root / "FaceForensics++"
    pairs = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    for split, split_pairs in pairs.items():
        (ff / "splits").mkdir(parents=True, exist_ok=True)
        (ff / "splits" / f"{split}.json").write_text(json.dumps(split_pairs))
        for a, b in split_pairs:
            for vid in (a, b):
                # One long video checks the 32-frame sampling.
                video(ff / f"original_sequences/youtube/c23/frames/{vid}", 40 if vid == "000" else 3)
            for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"):
                for vid in (f"{a}_{b}", f"{b}_{a}"):
                    video(ff / f"manipulated_sequences/{method}/c23/frames/{vid}")
    video(ff / "original_sequences/actors/c23/frames/01__kitchen_pan")
    video(ff / "manipulated_sequences/DeepFakeDetection/c23/frames/01_03__kitchen_pan__JZUXXFRB")
    for version in ("v1", "v2"):
        cdf = root / f"Celeb-DF-{version}"
        for folder, vid in [("Celeb-real", "id0_0000"), ("YouTube-real", "00170"), ("Celeb-synthesis", "id0_id1_0000"),
                            ("Celeb-synthesis", "id1_id0_0000")]:
            video(cdf / folder / "frames" / vid)
        (cdf / "List_of_testing_videos.txt").write_text("1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")
    dfdc = root / "DFDC"
    (dfdc / "test").mkdir(parents=True)
    (dfdc / "test/labels.csv").write_text("filename,label\naaqaifqrwn.mp4,0\naayfryxljh.mp4,1\n")
    for vid in ("aaqaifqrwn", "aayfryxljh"):
        video(dfdc / "test/frames" / vid)
    dfdcp = root / "DFDCP"
    dfdcp.mkdir()
    (dfdcp / "dataset.json").write_text(json.dumps({
        "method_A/643049/643049_A/1955670_B.mp4": {"label": "fake", "set": "test"},
        "original_videos/643049/643049_A_001.mp4": {"label": "real", "set": "test"}}))
    video(dfdcp / "method_A/frames/1955670_B")
    video(dfdcp / "original_videos/frames/643049_A_001")
    for layout, directory in [("ffpp", "FaceForensics++"), ("dfd", "FaceForensics++"), ("celebdf", "Celeb-DF-v1"),
                              ("celebdf", "Celeb-DF-v2"), ("dfdc", "DFDC"), ("dfdcp", "DFDCP")]:
        index_dataset(layout, root / directory)


def test_cross_domain_on_indexed_mini_tree(tmp_path):
    make_face_root(tmp_path)
    proto = load_protocol("cross_domain")
    splits = resolve_all(proto, build_sources(proto, tmp_path))
    train = splits["train"].table
    frames = train.groupby("group").size()
    assert frames["FaceForensics++/original_sequences/youtube/c23/frames/000"] == 32
    assert (frames.drop("FaceForensics++/original_sequences/youtube/c23/frames/000") == 3).all()
    # 2 real + 4 methods x 2 fakes; FaceShifter is not a training method.
    assert train.groupby("label")["group"].nunique().to_dict() == {0: 2, 1: 8}
    assert "FaceShifter" not in set(train["subset"])
    assert {"FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_001",
            "FaceForensics++/manipulated_sequences/Face2Face/c23/frames/000_001"} <= set(train["group"])
    expected_videos = {"val": (2, 8), "test/ffpp": (2, 8), "test/celebdf_v1": (1, 1), "test/celebdf_v2": (1, 1),
                       "test/dfd": (1, 1), "test/dfdc": (1, 1), "test/dfdcp": (1, 1)}
    for key, (real, fake) in expected_videos.items():
        table = splits[key].table
        assert table.groupby("label")["group"].nunique().to_dict() == {0: real, 1: fake}, key
    assert set(splits["test/celebdf_v1"].table["group"]).isdisjoint(splits["test/celebdf_v2"].table["group"])


# -- universal on an indexed mini tree ------------------------------------------------------------
def test_universal_on_indexed_mini_tree(tmp_path):
    cnn = tmp_path / "CNNDetection"
    for split in ("train", "val"):
        for cls in ("airplane", "car", "cat", "chair", "horse"):
            video(cnn / split / cls / "0_real", 2)
            video(cnn / split / cls / "1_fake", 2)
    for folder in ("progan/airplane", "progan/car", "cyclegan/apple", "biggan", "stylegan/bedroom", "gaugan",
                   "stargan", "deepfake", "seeingdark", "san", "crn", "imle"):
        video(cnn / "test" / folder / "0_real", 2)
        video(cnn / "test" / folder / "1_fake", 2)
    diffusion = tmp_path / "diffusion_datasets"
    for folder in ("laion/0_real", "imagenet/0_real", "guided/1_fake", "ldm_200/1_fake", "ldm_200_cfg/1_fake",
                   "ldm_100/1_fake", "glide_100_27/1_fake", "glide_50_27/1_fake", "glide_100_10/1_fake", "dalle/1_fake"):
        video(diffusion / folder, 5)
    index_dataset("forensynths", cnn)
    index_dataset("univfd_diffusion", diffusion)
    proto = load_protocol("universal")
    splits = resolve_all(proto, build_sources(proto, tmp_path))
    assert len(splits) == 2 + 19
    assert splits["train"].counts() == (10, 10)
    assert splits["test/progan"].counts() == (4, 4)  # class sub-folders; fewer than 1000: all of them
    assert set(splits["test/sitd"].table["id"].str.split("/").str[1]) == {"seeingdark"}
    ldm, dalle = splits["test/ldm_200"].table, splits["test/dalle"].table
    assert list(ldm.loc[ldm["label"] == 0, "id"]) == list(dalle.loc[dalle["label"] == 0, "id"])
    assert set(ldm.loc[ldm["label"] == 0, "subset"]) == {"laion"}
    assert set(splits["test/guided"].table.loc[lambda t: t["label"] == 0, "subset"]) == {"imagenet"}
    four = load_protocol("universal_4class")
    train = resolve_all(four, build_sources(four, tmp_path))["train"].table
    assert set(train["subset"]) == {"car", "cat", "chair", "horse"}
    jpeg = load_protocol("universal_jpeg75")
    assert all(t.perturb is not None and t.perturb.jpeg == 75 for t in jpeg.test.values())


def test_sources_yaml_is_plain_yaml():
    data = yaml.safe_load((Path(__file__).parents[1] / "protocols" / "sources.yaml").read_text())
    assert set(data) == set(catalog())
