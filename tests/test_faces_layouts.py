"""Each ``bench data faces`` layout writes frames exactly where ``bench data index`` reads them.

The download trees mirror the official ones, file names included; the videos are empty files
because planning never opens them. Frames are then put where each job says and the tree is
indexed with the unchanged indexers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from images import image_bytes

from bench.data.faces.layouts import LAYOUTS, plan
from bench.data.faces.run import _copy_metadata
from bench.data.indexers import index_dataset
from bench.data.sources.manifest import ManifestSource
from bench.errors import DataError

PNG = image_bytes((8, 8), seed=4)
PAIRS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def ffpp_tree(root: Path) -> None:
    for split, pairs in PAIRS.items():
        touch(root / f"splits/{split}.json", json.dumps(pairs))
        for a, b in pairs:
            for vid in (a, b):
                touch(root / f"original_sequences/youtube/c23/videos/{vid}.mp4")
                touch(root / f"original_sequences/youtube/c40/videos/{vid}.mp4")  # another level: not taken
            for method in METHODS:
                for vid in (f"{a}_{b}", f"{b}_{a}"):
                    touch(root / f"manipulated_sequences/{method}/c23/videos/{vid}.mp4")
                    if method != "FaceShifter":
                        touch(root / f"manipulated_sequences/{method}/masks/videos/{vid}.mp4")
    touch(root / "original_sequences/actors/c23/videos/01__kitchen_pan.mp4")
    touch(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_03__kitchen_pan__JZUXXFRB.mp4")


def celebdf_tree(root: Path) -> None:
    for rel in ("Celeb-real/id0_0000.mp4", "YouTube-real/00170.mp4", "Celeb-synthesis/id0_id1_0000.mp4",
                "Celeb-synthesis/id1_id0_0000.mp4"):
        touch(root / rel)
    touch(root / "List_of_testing_videos.txt", "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")


def dfdc_tree(root: Path) -> None:
    touch(root / "test/labels.csv", "filename,label\naaqaifqrwn.mp4,0\naayfryxljh.mp4,1\n")
    touch(root / "test/aaqaifqrwn.mp4")
    touch(root / "test/videos/aayfryxljh.mp4")
    touch(root / "train/dfdc_train_part_0/metadata.json", json.dumps({"owxbbpjpch.mp4": {"label": "FAKE"}}))
    touch(root / "train/dfdc_train_part_0/owxbbpjpch.mp4")


def dfdcp_tree(root: Path) -> None:
    touch(root / "dataset.json", json.dumps({
        "method_A/643049/643049_A/1955670_B.mp4": {"label": "fake", "set": "test"},
        "method_B/643049/643049_B/1955670_B.mp4": {"label": "fake", "set": "test"},
        "original_videos/643049/643049_A_001.mp4": {"label": "real", "set": "test"}}))
    for rel in ("method_A/643049/643049_A/1955670_B.mp4", "method_B/643049/643049_B/1955670_B.mp4",
                "original_videos/643049/643049_A_001.mp4"):
        touch(root / rel)


def deeperforensics_tree(root: Path) -> None:
    for split, name in (("train", "000_M101"), ("val", "001_M102"), ("test", "002_M103")):
        touch(root / f"lists/splits/{split}.txt", f"{name}.mp4\n")
        touch(root / f"manipulated_videos/end_to_end/{name}.mp4")
    touch(root / "source_videos/M101/BlendShape/camera_front/M101_BlendShape_camera_front.mp4")
    touch(root / "source_videos/M101/light_up/camera_front/clip.mp4")  # two "clip" stems in one actor
    touch(root / "source_videos/M101/light_down/camera_front/clip.mp4")


def uadfv_tree(root: Path) -> None:
    touch(root / "real/0000.mp4")
    touch(root / "fake/0000_fake.mp4")


TREES = {"ffpp": ffpp_tree, "celebdf": celebdf_tree, "dfdc": dfdc_tree, "dfdcp": dfdcp_tree,
         "deeperforensics": deeperforensics_tree, "uadfv": uadfv_tree}


def extract_placeholders(layout: str, root: Path, out: Path) -> list:
    """What ``bench data faces`` leaves behind, with one placeholder frame per video."""
    found = plan(layout, root)
    for job in found.jobs:
        (out / job.frames).mkdir(parents=True, exist_ok=True)
        (out / job.frames / "000.png").write_bytes(PNG)
    _copy_metadata(root, out, found.metadata)
    assert not found.missing
    return found.jobs


def videos(manifest: Path, data_root: Path) -> dict[tuple[str, int], int]:
    table = ManifestSource("m", {"path": manifest.relative_to(data_root).as_posix()}, data_root).table
    return {k: int(v) for k, v in table.groupby(["split", "label"])["group"].nunique().items()}


def test_every_layout_has_a_tree():
    assert set(TREES) == set(LAYOUTS)


@pytest.mark.parametrize("layout", sorted(TREES))
def test_frames_land_where_the_indexer_reads_them(tmp_path, layout):
    download, out = tmp_path / "download", tmp_path / "data" / layout
    TREES[layout](download)
    jobs = extract_placeholders(layout, download, out)
    manifest = index_dataset(layout, out)
    counts = videos(manifest, tmp_path / "data")
    expected = {
        # 6 reals + 5 methods x 6 fakes; DFD's two videos go to index_dfd.csv.
        "ffpp": {("train", 0): 2, ("train", 1): 10, ("val", 0): 2, ("val", 1): 10, ("test", 0): 2, ("test", 1): 10},
        "celebdf": {("train", 0): 1, ("train", 1): 1, ("test", 0): 1, ("test", 1): 1},
        "dfdc": {("test", 0): 1, ("test", 1): 1, ("train", 1): 1},
        "dfdcp": {("test", 0): 1, ("test", 1): 2},
        "deeperforensics": {("train", 1): 1, ("val", 1): 1, ("test", 1): 1, ("test", 0): 3},
        "uadfv": {("test", 0): 1, ("test", 1): 1},
    }[layout]
    assert counts == expected
    assert sum(expected.values()) == len(jobs) - (2 if layout == "ffpp" else 0)
    if layout == "ffpp":
        assert videos(index_dataset("dfd", out), tmp_path / "data") == {("test", 0): 1, ("test", 1): 1}
        masked = {j.video: j.mask for j in jobs}
        assert masked["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"] == \
            "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4"
        assert masked["manipulated_sequences/FaceShifter/c23/videos/000_001.mp4"] is None
        assert all("/c23/" in j.video for j in jobs)
        assert all(j.landmarks == j.frames.replace("/frames/", "/landmarks/") for j in jobs)


def test_layout_options_and_in_place_extraction(tmp_path):
    ffpp_tree(tmp_path)
    only = plan("ffpp", tmp_path, compression="c40", parts="youtube")
    assert [j.frames for j in only.jobs][:1] == ["original_sequences/youtube/c40/frames/000"] and len(only.jobs) == 6
    extract_placeholders("ffpp", tmp_path, tmp_path)  # frames beside the videos, DeepfakeBench's way
    assert (tmp_path / "original_sequences/youtube/c23/frames/000/000.png").is_file()
    assert index_dataset("ffpp", tmp_path).is_file()
    with pytest.raises(Exception, match="no option 'quality'"):
        plan("ffpp", tmp_path, quality="c23")


def test_two_videos_that_would_share_a_frame_folder_are_an_error_before_work(tmp_path):
    touch(tmp_path / "test/part_a/abc.mp4")
    touch(tmp_path / "test/part_b/abc.mp4")
    with pytest.raises(DataError, match="would both write frames to test/frames/abc"):
        plan("dfdc", tmp_path)


def test_missing_label_files_are_listed_for_the_summary(tmp_path):
    touch(tmp_path / "Celeb-real/id0_0000.mp4")
    assert plan("celebdf", tmp_path).missing == ["List_of_testing_videos.txt"]
