"""Dataset indexers: turn a downloaded dataset tree into a manifest CSV the ``manifest`` source reads.

``bench data index LAYOUT ROOT`` calls :func:`index_dataset`. Each layout's indexer lists the tree
(never decoding an image) and reads the dataset's own label and split files; the manifest has the
columns ``path,label,split,subset,group`` with paths relative to the manifest's directory. An
indexer that takes a ``notes`` list appends what it left out and why (empty folders, a release's
known gaps), which ``bench data index`` prints.
"""

from __future__ import annotations

import csv
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from bench.data.indexers.common import Row
from bench.data.indexers.deepfakebench import index_deepfakebench
from bench.data.indexers.df40 import index_df40
from bench.data.indexers.ffpp import index_dfd, index_ffpp
from bench.data.indexers.generated import index_drct2m, index_real_fake_sets
from bench.data.indexers.hints import hints
from bench.data.indexers.images import index_forensynths, index_genimage, index_univfd_diffusion
from bench.data.indexers.videos import (
    index_celebdf,
    index_deeperforensics,
    index_dfdc,
    index_dfdcp,
    index_uadfv,
)
from bench.errors import ConfigError, DataError, did_you_mean

#: Layout name -> indexer. An indexer takes the dataset root (plus keyword options) and yields rows.
INDEXERS: dict[str, Callable[..., Iterator[Row]]] = {
    "ffpp": index_ffpp,
    "dfd": index_dfd,
    "deepfakebench": index_deepfakebench,
    "celebdf": index_celebdf,
    "dfdc": index_dfdc,
    "dfdcp": index_dfdcp,
    "deeperforensics": index_deeperforensics,
    "uadfv": index_uadfv,
    "forensynths": index_forensynths,
    "univfd_diffusion": index_univfd_diffusion,
    "genimage": index_genimage,
    "real_fake_sets": index_real_fake_sets,
    "df40": index_df40,
    "drct2m": index_drct2m,
}

#: Default manifest file name inside ROOT; DFD shares the FF++ directory, so it gets its own name.
MANIFEST_NAMES: dict[str, str] = {"dfd": "index_dfd.csv"}
DEFAULT_MANIFEST = "index.csv"
COLUMNS = ["path", "label", "split", "subset", "group"]


def layout_options(layout: str) -> dict[str, Any]:
    """The keyword options a layout's indexer accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
    params = list(inspect.signature(_indexer(layout)).parameters.values())[1:]
    return {p.name: p.default for p in params if p.name != "notes"}


def describe(layout: str) -> str:
    """The first line of a layout's docstring (for ``bench data index --help``)."""
    return (inspect.getdoc(_indexer(layout)) or "").splitlines()[0]


def default_manifest(layout: str, root: str | Path) -> Path:
    """Where :func:`index_dataset` writes when no ``out`` is given: ``ROOT/index.csv`` (``index_dfd.csv`` for dfd)."""
    return Path(root) / MANIFEST_NAMES.get(layout, DEFAULT_MANIFEST)


def _indexer(layout: str) -> Callable[..., Iterator[Row]]:
    if layout not in INDEXERS:
        raise ConfigError(f"Unknown dataset layout {layout!r}.{did_you_mean(layout, INDEXERS)} "
                          f"Available: {', '.join(sorted(INDEXERS))}.")
    return INDEXERS[layout]


def index_dataset(layout: str, root: str | Path, out: str | Path | None = None, *,
                  overwrite: bool = False, notes: list[str] | None = None, **options: Any) -> Path:
    """Index the dataset tree at ``root`` laid out as ``layout``; write the manifest and return its path.

    ``out`` defaults to :func:`default_manifest`; it must lie in ``root`` or a directory above it,
    because the manifest's paths are relative to its own directory. An existing manifest is
    replaced only with ``overwrite=True``. ``options`` are the layout's keyword options (see
    :func:`layout_options`, e.g. ``splits`` and ``compression`` for ``ffpp``, ``json`` for
    ``deepfakebench``). ``notes``, when given, receives the indexer's notes on what it left out.
    The file is written under a temporary name and renamed, so an interrupted run never leaves a
    half-written manifest.
    """
    indexer = _indexer(layout)
    allowed = layout_options(layout)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"Layout {layout!r} has no option {unknown[0]!r}; its options are: "
                          f"{', '.join(allowed) or 'none'}.")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; pass the directory that holds the {layout} dataset.")
    out = Path(out) if out is not None else default_manifest(layout, root)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it or --out to write elsewhere.")
    # Lexical paths, not resolved ones: a data root made of symlinks to other disks must keep working.
    prefix = os.path.relpath(os.path.abspath(root), os.path.abspath(out.parent))
    if prefix == os.curdir:
        prefix = ""
    elif prefix.startswith(os.pardir):
        raise ConfigError(f"{out} is not in {root} or a directory above it; the manifest's paths are relative "
                          "to its own directory, so write it there (or above).")
    prefix = PurePosixPath(*Path(prefix).parts).as_posix() + "/" if prefix else ""
    if "notes" in inspect.signature(indexer).parameters:
        options["notes"] = notes if notes is not None else []
    try:
        rows = sorted(indexer(root, **options))
    except DataError as err:  # say where the dataset folder is when ROOT is not it
        raise DataError(f"{str(err).rstrip()}{hints(layout, root)}") from None
    if not rows:
        raise DataError(f"Found no images under {root} for layout {layout!r}; check ROOT and the layout "
                        f"({describe(layout)}).")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            previous = None
            for row in rows:
                if row.path == previous:
                    raise DataError(f"Layout {layout!r} listed {root / row.path} twice; this is a bug in the indexer.")
                previous = row.path
                writer.writerow([prefix + row.path, row.label, row.split, row.subset, row.group])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = ["INDEXERS", "Row", "default_manifest", "describe", "index_dataset", "layout_options"]
