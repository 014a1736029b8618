"""Face-video test sets: Celeb-DF v1/v2, DFDC, DFDC-Preview, DeeperForensics-1.0 and UADFV.

Every layout is the dataset's own tree with the frames of ``<dir>/<video>.mp4`` extracted to
``<dir>/frames/<video>/<frame>.png`` (the convention of DeepfakeBench's preprocessing, whose
released "rgb" data can be indexed as is).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from bench.data.indexers.common import Row, need_dir, need_file, read_json, subdirs, video_rows
from bench.errors import DataError

CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}


def _frames(root: Path, folder: str) -> str:
    """The directory holding one sub-directory of frames per video of ``folder``."""
    return f"{folder}/frames" if (root / folder / "frames").is_dir() else folder


def index_celebdf(root: Path, test_list: Path | None = None) -> Iterator[Row]:
    """Index Celeb-DF (v1 or v2): videos in ``List_of_testing_videos.txt`` are ``test``, the rest ``train``.

    Layout: ``ROOT/{Celeb-real,YouTube-real,Celeb-synthesis}/frames/<video>/<frame>.png``; labels come
    from the folder (``Celeb-synthesis`` is fake). Subsets are the folder names.
    """
    listing = need_file(Path(test_list) if test_list else root / "List_of_testing_videos.txt",
                        "official Celeb-DF test list", "It ships with the dataset; put it in the dataset directory.")
    tests = set()
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1].count("/") != 1:
            raise DataError(f"{listing} line {number} is {line!r}; expected '<0|1> <folder>/<video>.mp4'.")
        tests.add(PurePosixPath(parts[1]).with_suffix("").as_posix())
    present = [f for f in CELEBDF_FOLDERS if (root / f).is_dir()]
    if not present:
        raise DataError(f"{root} has none of {', '.join(CELEBDF_FOLDERS)}; the Celeb-DF layout expects them.")
    for folder in present:
        frames = _frames(root, folder)
        for video in subdirs(root / frames):
            split = "test" if f"{folder}/{video}" in tests else "train"
            yield from video_rows(root, f"{frames}/{video}", CELEBDF_FOLDERS[folder], split, folder)


def index_dfdc(root: Path) -> Iterator[Row]:
    """Index DFDC: the public test set (``test/labels.csv``, label 1 = fake) and any training parts.

    Layout: ``ROOT/test/labels.csv`` + ``ROOT/test/frames/<video>/*.png``; optional training parts
    ``ROOT/train/dfdc_train_part_<n>/metadata.json`` + ``.../frames/<video>/*.png``. Listed videos
    without frames (no face found) are left out. The subset is ``dfdc``.
    """
    labels = need_file(root / "test" / "labels.csv", "DFDC public test label file",
                       "It ships with the public test set (test/labels.csv with columns filename,label).")
    with open(labels, newline="") as f:
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or []):
            raise DataError(f"{labels} lacks the columns filename,label.")
        for number, rec in enumerate(reader, start=2):
            if rec["label"].strip() not in ("0", "1"):
                raise DataError(f"{labels} line {number} has label {rec['label']!r}; expected 0 (real) or 1 (fake).")
            video = PurePosixPath(rec["filename"]).stem
            yield from video_rows(root, f"test/frames/{video}", int(rec["label"]), "test", "dfdc")
    for part in subdirs(root / "train"):
        meta_path = root / "train" / part / "metadata.json"
        if not meta_path.is_file():
            continue
        meta = read_json(meta_path)
        for video in subdirs(root / "train" / part / "frames"):
            info = meta.get(f"{video}.mp4")
            if info is not None:
                label = 1 if str(info.get("label", "")).upper() == "FAKE" else 0
                yield from video_rows(root, f"train/{part}/frames/{video}", label, "train", "dfdc")


def index_dfdcp(root: Path) -> Iterator[Row]:
    """Index DFDC-Preview from its ``dataset.json`` (``{video path: {label, set}}``).

    Frames of ``method_A/<id>/<id>_A/<name>.mp4`` are read from ``method_A/frames/<name>/``
    (DeepfakeBench) or ``method_A/<id>/<id>_A/<name>/``. Subsets are ``original_videos``,
    ``method_A``, ``method_B``; the split is the file's ``set`` field.
    """
    meta = read_json(need_file(root / "dataset.json", "DFDC-Preview index", "It ships with the dataset."))
    seen: set[str] = set()
    for key in sorted(meta):
        info, video = meta[key], PurePosixPath(key)
        subset = video.parts[0]
        candidates = [f"{subset}/frames/{video.stem}", video.with_suffix("").as_posix()]
        frames = next((c for c in candidates if (root / c).is_dir()), None)
        # Two entries may share a file name (DeepfakeBench's flat frames folder): keep the first.
        if frames is None or frames in seen:
            continue
        seen.add(frames)
        label = 1 if str(info.get("label", "")).lower() == "fake" else 0
        yield from video_rows(root, frames, label, str(info.get("set", "test")), subset)


def index_deeperforensics(root: Path, perturbation: str = "end_to_end") -> Iterator[Row]:
    """Index DeeperForensics-1.0: fakes of one perturbation split by ``lists/splits/*.txt``, reals all ``test``.

    Layout: ``ROOT/manipulated_videos/<perturbation>/frames/<video>/*.png``,
    ``ROOT/source_videos/<actor>/frames/<video>/*.png`` (DeepfakeBench's convention: every real
    video is a test video because the splits list fakes only).
    """
    split_of = {}
    for split in ("train", "val", "test"):
        path = need_file(root / "lists" / "splits" / f"{split}.txt", f"DeeperForensics {split} list",
                         "It ships with the dataset (lists/splits).")
        for name in (PurePosixPath(n.strip()).stem for n in path.read_text().split() if n.strip()):
            if split_of.get(name, split) != split:
                raise DataError(f"DeeperForensics video {name} is listed in both {path.parent / split_of[name]}.txt "
                                f"and {path}; a video belongs to one split: fix or download the lists again.")
            split_of[name] = split
    frames = f"manipulated_videos/{perturbation}/frames"
    need_dir(root / frames, f"DeeperForensics {perturbation} fake", "DeeperForensics-1.0")
    for video in subdirs(root / frames):
        yield from video_rows(root, f"{frames}/{video}", 1, split_of.get(video, "unlisted"), perturbation)
    for actor in subdirs(root / "source_videos"):
        for video in subdirs(root / "source_videos" / actor / "frames"):
            yield from video_rows(root, f"source_videos/{actor}/frames/{video}", 0, "test", "source_videos")


def index_uadfv(root: Path) -> Iterator[Row]:
    """Index UADFV: ``ROOT/{real,fake}/frames/<video>/*.png``, every video in ``test``."""
    for folder, label in (("real", 0), ("fake", 1)):
        need_dir(root / folder, f"UADFV {folder} video", "UADFV ({real,fake}/frames/<video>/*.png)")
        frames = _frames(root, folder)
        for video in subdirs(root / frames):
            yield from video_rows(root, f"{frames}/{video}", label, "test", folder)
