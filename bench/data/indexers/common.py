"""Helpers shared by the indexers: fast directory listing and the row type they yield.

Indexers never open image files: they list directories with :func:`os.scandir` (whose entries
carry the file type, so no extra ``stat`` per file) and read only the small metadata files that
define labels and splits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from bench.data.sources.folder import DEFAULT_EXTENSIONS
from bench.errors import DataError

IMAGE_EXTENSIONS = frozenset(DEFAULT_EXTENSIONS)


class Row(NamedTuple):
    """One manifest row; ``path`` is relative to the indexed root, ``group`` is the video id ('' for stills)."""

    path: str
    label: int
    split: str
    subset: str
    group: str = ""


def is_image(name: str) -> bool:
    """True for a visible file name with an image extension."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def subdirs(path: Path) -> list[str]:
    """Sorted names of the visible sub-directories of ``path`` ([] when it is not a directory)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def images_in(path: Path) -> list[str]:
    """Sorted names of the image files directly in ``path`` ([] when it is not a directory)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if is_image(e.name) and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


def walk_images(path: Path) -> Iterator[str]:
    """Paths (relative to ``path``, ``/``-separated) of every image below ``path``, in sorted order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        here = path / rel if rel else path
        dirs, files = [], []
        with os.scandir(here) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    dirs.append(entry.name)
                elif is_image(entry.name):
                    files.append(entry.name)
        prefix = f"{rel}/" if rel else ""
        yield from (prefix + f for f in sorted(files))
        stack.extend(prefix + d for d in sorted(dirs, reverse=True))


def video_rows(root: Path, video_dir: str, label: int, split: str, subset: str) -> Iterator[Row]:
    """One row per frame of the video whose frames sit in ``root/video_dir``.

    The group is ``<root name>/<video_dir>``: the dataset plus the full relative video path, so two
    videos with the same folder name (FF++ ``000_003`` under Deepfakes and under Face2Face) stay apart.
    """
    group = f"{root.name}/{video_dir}"
    for frame in images_in(root / video_dir):
        yield Row(f"{video_dir}/{frame}", label, split, subset, group)


def need_dir(path: Path, what: str, layout: str) -> Path:
    """Return ``path`` when it is a directory, else raise a DataError naming the expected layout."""
    if not path.is_dir():
        raise DataError(f"{path} does not exist, so there is no {what} to index; the {layout} layout expects it.")
    return path


def need_file(path: Path, what: str, fix: str) -> Path:
    """Return ``path`` when it is a file, else raise a DataError saying how to get it."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; it is the {what}. {fix}")
    return path


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning a syntax error into a DataError that names the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); download it again.") from None


def scan(base: Path) -> tuple[list[str], int, dict[str, int]]:
    """Images below ``base`` (relative, sorted), the number of empty leaf folders, and other files by extension.

    Releases with known gaps (DF40's empty video folders, videos where frames belong) are reported
    from these counts instead of being passed over in silence.
    """
    images: list[str] = []
    empty, others = 0, {}
    stack = [""]
    while stack:
        rel = stack.pop()
        dirs, files = [], []
        with os.scandir(base / rel if rel else base) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    dirs.append(entry.name)
                elif is_image(entry.name):
                    files.append(entry.name)
                else:
                    ext = os.path.splitext(entry.name)[1].lower() or entry.name
                    others[ext] = others.get(ext, 0) + 1
        prefix = f"{rel}/" if rel else ""
        empty += int(rel != "" and not dirs and not files)
        images += [prefix + f for f in sorted(files)]
        stack.extend(prefix + d for d in sorted(dirs, reverse=True))
    return images, empty, others
