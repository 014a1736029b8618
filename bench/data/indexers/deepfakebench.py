"""DeepfakeBench's preprocessed frames plus its dataset JSON files (``FaceForensics++.json`` and friends).

A DeepfakeBench JSON file is ``{dataset: {label_name: {split: {[compression:] {video: {label,
frames: [paths]}}}}}}``; the compression level exists for the FF++ family only. Frame paths are
relative to DeepfakeBench's ``rgb_dir`` (sometimes with Windows separators, a ``./datasets/rgb``
prefix or an absolute prefix from the machine that wrote them); they are mapped onto ``ROOT`` by
finding, once per video, the shortest path suffix that exists there.

DeepfakeBench lists the same video in several splits for test-only datasets (UADFV, DFD, the reals
of DeeperForensics, DFDC-P's val = test); a manifest lists each frame once, so a frame keeps the
first of ``test``, ``val``, ``train`` it appears in. Subsets and video ids follow the native
indexers (``youtube``, ``Deepfakes``, ``Celeb-real``, ...; ``<ROOT name>/<video dir>``), so a
protocol works the same whichever way the data was indexed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from bench.data.indexers.common import Row, need_file, read_json
from bench.errors import DataError

SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}
COMPRESSIONS = ("c23", "c40", "raw")
FF_TREE = ("original_sequences", "manipulated_sequences")


def subset_of(relative: str) -> str:
    """The subset of a frame path: the method folder in the FF++ tree, else the first folder."""
    parts = PurePosixPath(relative).parts
    for i, part in enumerate(parts[:-1]):
        if part in FF_TREE:
            return parts[i + 1]
    return parts[0]


def _videos(node: Any, compression: str) -> Iterator[tuple[str, dict]]:
    """(video name, record) pairs below one split node, choosing ``compression`` where levels exist."""
    if not isinstance(node, dict):
        return
    if "frames" in node:  # a lone record where a mapping of videos belongs (DeepfakeBench's DFDC val)
        return
    if node and set(node) <= set(COMPRESSIONS):
        node = node.get(compression, {})
    for video, record in node.items():
        if isinstance(record, dict) and isinstance(record.get("frames"), list) and record["frames"]:
            yield video, record


class _Mapper:
    """Maps DeepfakeBench frame paths onto ``root`` by dropping the prefix that does not exist there."""

    def __init__(self, root: Path):
        self.root = root
        self.drop: int | None = None
        #: Videos whose first listed frame was found under the root.
        self.found = 0

    def parts(self, raw: str) -> tuple[str, ...]:
        text = raw.replace("\\", "/")
        return tuple(p for p in text.split("/") if p not in ("", "."))

    def prefix(self, first: str) -> int:
        """How many leading components to drop so that ``first`` exists under the root."""
        parts = self.parts(first)
        # Try the last prefix that worked first: one stat per video in the common case.
        order = ([self.drop] if self.drop is not None else []) + list(range(len(parts)))
        for k in order:
            if k < len(parts) and self.root.joinpath(*parts[k:]).is_file():
                self.drop = k
                self.found += 1
                return k
        if self.root.name in parts:  # frame missing on disk: keep the path below the dataset folder
            return parts.index(self.root.name) + 1
        return 0


def index_deepfakebench(root: Path, json: list[Path] | Path | str, compression: str = "c23") -> Iterator[Row]:
    """Index frames under ``root`` listed in one or more DeepfakeBench dataset JSON files.

    ``root`` is the dataset directory inside DeepfakeBench's ``rgb`` folder (e.g.
    ``datasets/rgb/FaceForensics++``); ``json`` the JSON file(s), e.g. ``FaceForensics++.json``
    and ``FaceShifter.json`` together; ``compression`` picks the FF++ level (``c23``).
    Labels: a label name containing ``real`` (``FF-real``, ``CelebDFv2_real``, ``DFDCP_Real``) is
    real, every other one fake.
    """
    files = [Path(p) for p in ([json] if isinstance(json, (str, Path)) else json)]
    if not files:
        raise DataError("The deepfakebench layout needs at least one dataset JSON file (json=...).")
    mapper, rows = _Mapper(root), {}
    for path in files:
        data = read_json(need_file(path, "DeepfakeBench dataset JSON", "Download the JSON configurations "
                                   "linked from https://github.com/SCLBD/DeepfakeBench or generate them."))
        if not isinstance(data, dict):
            raise DataError(f"{path} is not a DeepfakeBench dataset JSON ({{dataset: {{label: {{split: ...}}}}}}).")
        for labels in data.values():
            for label_name, splits in (labels or {}).items():
                label = 0 if "real" in str(label_name).lower() else 1
                for split, node in (splits or {}).items():
                    if split not in SPLIT_PRIORITY:
                        continue
                    for _, record in _videos(node, compression):
                        label = 0 if "real" in str(record.get("label", label_name)).lower() else 1
                        k = mapper.prefix(record["frames"][0])
                        for frame in record["frames"]:
                            rel = "/".join(mapper.parts(frame)[k:])
                            old = rows.get(rel)
                            if old is None or SPLIT_PRIORITY[split] < SPLIT_PRIORITY[old[1]]:
                                rows[rel] = (label, split)
    if not rows:
        raise DataError(f"{', '.join(map(str, files))} list no frames at compression {compression!r}.")
    if not mapper.found:
        raise DataError(f"None of the frames listed in {', '.join(map(str, files))} exists under {root}; ROOT "
                        "must be the dataset's directory inside DeepfakeBench's rgb folder (e.g. "
                        "datasets/rgb/FaceForensics++).")
    for rel in sorted(rows):
        label, split = rows[rel]
        video_dir = PurePosixPath(rel).parent.as_posix()
        yield Row(rel, label, split, subset_of(rel), f"{root.name}/{video_dir}")
