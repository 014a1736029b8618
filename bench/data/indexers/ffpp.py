"""FaceForensics++ and DeepFakeDetection (DFD): the official FF++ tree with extracted face frames.

Layout (``ROOT`` = the ``FaceForensics++`` directory, as written by the official download script
plus a frame-extraction step, or as shipped by DeepfakeBench's preprocessed "rgb" data)::

    original_sequences/youtube/<c23>/frames/<video>/<frame>.png          real, FF++
    manipulated_sequences/<method>/<c23>/frames/<a>_<b>/<frame>.png      fake, FF++
    original_sequences/actors/<c23>/frames/<video>/<frame>.png           real, DFD
    manipulated_sequences/DeepFakeDetection/<c23>/frames/<video>/...     fake, DFD
    splits/{train,val,test}.json                                         official splits

The split files are the official lists of target/source id pairs (``[["953", "974"], ...]``); the
pair ``(a, b)`` puts the real videos ``a`` and ``b`` and the fakes ``a_b`` and ``b_a`` in that
split. Subsets are the folder names (``youtube``, ``Deepfakes``, ``Face2Face``, ``FaceSwap``,
``NeuralTextures``, ``FaceShifter``, ``actors``, ``DeepFakeDetection``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bench.data.indexers.common import Row, need_dir, need_file, read_json, subdirs, video_rows
from bench.errors import DataError

LAYOUT = "FaceForensics++ (original_sequences/youtube/<c23>/frames/<video>/*.png, manipulated_sequences/...)"
SPLITS_URL = "https://github.com/ondyari/FaceForensics/tree/master/dataset/splits"
#: The DFD parts of the tree, indexed by :func:`index_dfd` and left out of :func:`index_ffpp`.
DFD_PARTS = ("actors", "DeepFakeDetection")
#: Frames of a video listed in no split file get this split, so they are visible but never used.
UNLISTED = "unlisted"


def _split_of(root: Path, splits: Path | None) -> dict[str, str]:
    """Map every real video id and every ``a_b`` fake id to its official split."""
    # DeepfakeBench keeps the three files directly in the FaceForensics++ directory.
    candidates = [Path(splits)] if splits else [root / "splits", root]
    where = next((c for c in candidates if (c / "train.json").is_file()), candidates[0])
    mapping: dict[str, str] = {}
    for split in ("train", "val", "test"):
        path = need_file(where / f"{split}.json", f"official FF++ {split} split list",
                         f"Download train.json, val.json and test.json from {SPLITS_URL} into {root / 'splits'} "
                         "(or pass their directory as the splits option).")
        pairs = read_json(path)
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise DataError(f"{path} is not a list of [target, source] id pairs like the official split files.")
        for a, b in pairs:
            for key in (str(a), str(b), f"{a}_{b}", f"{b}_{a}"):
                if mapping.get(key, split) != split:
                    raise DataError(f"FF++ video {key} is listed in both {where / (mapping[key] + '.json')} and "
                                    f"{path}; the official splits are disjoint: download them again from {SPLITS_URL}.")
                mapping[key] = split
    return mapping


def _frames_dir(root: Path, kind: str, part: str, compression: str) -> str:
    rel = f"{kind}/{part}/{compression}/frames"
    if not (root / rel).is_dir():
        found = [c for c in subdirs(root / kind / part) if (root / kind / part / c / "frames").is_dir()]
        raise DataError(
            f"{root / rel} does not exist; {kind}/{part} has frames for "
            f"{', '.join(found) or 'no compression level'} (pass compression=... or extract frames first)."
        )
    return rel


def index_ffpp(root: Path, splits: Path | None = None, compression: str = "c23") -> Iterator[Row]:
    """Index FF++ (real youtube videos and every manipulation method except DFD) with the official splits.

    ``splits`` is the directory holding ``train.json``, ``val.json`` and ``test.json`` (default
    ``ROOT/splits``, then ``ROOT`` itself as DeepfakeBench stores them); ``compression`` is ``c23``,
    ``c40`` or ``raw``.
    """
    need_dir(root / "original_sequences" / "youtube", "real FF++ video", LAYOUT)
    split_of = _split_of(root, splits)
    parts = [("original_sequences", "youtube", 0)]
    parts += [("manipulated_sequences", m, 1) for m in subdirs(root / "manipulated_sequences") if m not in DFD_PARTS]
    if len(parts) == 1:
        raise DataError(f"{root / 'manipulated_sequences'} holds no manipulation method; the {LAYOUT} layout expects "
                        "Deepfakes, Face2Face, FaceSwap, NeuralTextures (and optionally FaceShifter).")
    for kind, part, label in parts:
        frames = _frames_dir(root, kind, part, compression)
        for video in subdirs(root / frames):
            yield from video_rows(root, f"{frames}/{video}", label, split_of.get(video, UNLISTED), part)


def index_dfd(root: Path, compression: str = "c23") -> Iterator[Row]:
    """Index DeepFakeDetection (DFD) from the FF++ tree: ``actors`` (real) and ``DeepFakeDetection`` (fake).

    DFD has no official split, so every video is in ``test``.
    """
    for kind, part, label in (("original_sequences", "actors", 0), ("manipulated_sequences", "DeepFakeDetection", 1)):
        need_dir(root / kind / part, f"DFD {part} video", LAYOUT)
        frames = _frames_dir(root, kind, part, compression)
        for video in subdirs(root / frames):
            yield from video_rows(root, f"{frames}/{video}", label, "test", part)
