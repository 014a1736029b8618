"""What each row of a resolved split is and holds: for the held-out check and for ``--resume``.

One ``stat`` per file gives both (:meth:`bench.data.base.Source.item_identities`): the row's
*identity* (which file it is, ``device:inode``, whatever path or source reached it; the item key
for sources without files) and its *content key* (path below the data root, size, modification
time). From them:

- :func:`check_held_out`: a test set that shares an image with train or val is refused (unless
  the protocol marks it ``sanity``), naming the first shared file; this is what ``bench validate``
  cannot see without the data (two sources over one folder, links, overlapping manifests).
- :attr:`SplitIdentity.fingerprint`: a hash of every row's content key and label, recorded when a
  run starts and compared when it is resumed (an edited image changes it).

A copy of a file (``cp -r train/ test/``) is another file with the same content: :func:`check_held_out`
also compares a *content key* (size plus the sha256 of the first and last 64 KiB) of every test
file whose size some train or val file has, so only those few files are read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from bench.data.splits import ResolvedSplit
from bench.errors import DataError
from bench.protocol import Protocol


@dataclass
class SplitIdentity:
    """Per-row identities of one split, and the fingerprint of its content."""

    identities: list[str]
    fingerprint: str


def identify(split: ResolvedSplit) -> SplitIdentity:
    """Identities (table order) and content fingerprint of ``split``."""
    table = split.table
    identities = [""] * len(table)
    digest = hashlib.sha256()
    keys = [""] * len(table)
    for source_name, source in split.sources.items():
        rows = table.index[table["source"] == source_name].tolist()
        for row, (identity, key) in zip(rows, source.item_identities(table.loc[rows])):
            identities[row], keys[row] = identity, f"{source_name}|{key}"
    for key, label in zip(keys, table["label"].tolist()):
        digest.update(f"{key}\t{label}\n".encode())
    return SplitIdentity(identities, "sha256:" + digest.hexdigest())


def identify_all(splits: dict[str, ResolvedSplit]) -> dict[str, SplitIdentity]:
    """:func:`identify` for every split, by split name (``train``, ``val``, test names)."""
    return {split.name: identify(split) for split in splits.values()}


def check_held_out(proto: Protocol, splits: dict[str, ResolvedSplit], identity: dict[str, SplitIdentity]) -> None:
    """Refuse a test set that shares a file with train or val, unless the protocol marks it ``sanity``."""
    by_name = {s.name: s for s in splits.values()}
    used: dict[str, tuple[str, str]] = {}
    for key in ("train", "val"):  # by key: a round of a temporal run names them r<k>_train, r<k>_val
        table = splits[key].table
        for ident, source, item in zip(identity[splits[key].name].identities, table["source"], table["id"]):
            used.setdefault(ident, (key, f"{source}:{item}"))
    for test_name, test in proto.test.items():
        if test.sanity or test_name not in identity:
            continue
        table = by_name[test_name].table
        shared = [(row, used[ident]) for row, ident in enumerate(identity[test_name].identities) if ident in used]
        if shared:
            row, (where, first) = shared[0]
            mine = f"{table['source'].iloc[row]}:{table['id'].iloc[row]}"
            raise DataError(
                f"Test set {test_name!r} shares {len(shared)} of its {len(table)} images with {where} (first: {mine} "
                f"is the same file as {first}), so it is not held out; point it at other images, or mark it "
                "`sanity: true` in the protocol (an in-domain sanity set, reported but never ranked on)."
            )
    _check_copies(proto, {key: splits[key] for key in ("train", "val")}, by_name)


#: Bytes hashed at each end of a file for its content key.
_EDGE = 64 * 1024


def content_key(path: Path) -> str:
    """``<size>:<sha256 of the first and last 64 KiB>``: equal for a copy of a file, read in two 64 KiB reads."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.sha256(fh.read(_EDGE))
        if size > _EDGE:
            fh.seek(max(_EDGE, size - _EDGE))
            digest.update(fh.read(_EDGE))
    return f"{size}:{digest.hexdigest()}"


def _files(split: ResolvedSplit) -> list[tuple[str, Path, int]]:
    """``(source:id, path, size)`` of every row of ``split`` backed by a file."""
    out = []
    for source, item in zip(split.table["source"], split.table["id"]):
        path = split.sources[source].file_path(item)
        if path is None:
            continue
        try:
            out.append((f"{source}:{item}", path, os.stat(path).st_size))
        except (OSError, ValueError):  # a missing file is the pre-run check's to report
            continue
    return out


def _check_copies(proto: Protocol, sides: dict[str, ResolvedSplit], by_name: dict[str, ResolvedSplit]) -> None:
    """Refuse a test set holding copies of train or val files (same content key), unless it is ``sanity``.

    Only files of a size that some file on the other side has are read, each once.
    """
    by_size: dict[int, list[tuple[str, str, Path]]] = {}
    for name, split in sides.items():  # by key, as above: a temporal round's are r<k>_train, r<k>_val
        for item, path, size in _files(split):
            by_size.setdefault(size, []).append((name, item, path))
    hashed: dict[Path, str | None] = {}

    def key(path: Path) -> str | None:
        if path not in hashed:
            try:
                hashed[path] = content_key(path)
            except OSError:  # unreadable: the pre-run check reports it
                hashed[path] = None
        return hashed[path]

    for test_name, test in proto.test.items():
        if test.sanity or test_name not in by_name:
            continue
        rows = _files(by_name[test_name])
        shared = []
        for item, path, size in rows:
            mine = key(path) if size in by_size else None
            match = next(((n, i) for n, i, p in by_size.get(size, []) if mine is not None and key(p) == mine), None)
            if match is not None:
                shared.append((item, match))
        if shared:
            mine, (where, first) = shared[0]
            raise DataError(
                f"{len(shared)} of the {len(rows)} images of test set {test_name!r} are copies of {where} images "
                f"(first: {mine} has the content of {first}: same size, first and last 64 KiB), so it is not held "
                "out; point it at other images, or mark it `sanity: true` in the protocol (an in-domain sanity set, "
                "reported but never ranked on)."
            )
