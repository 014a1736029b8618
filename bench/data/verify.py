"""``bench data verify``: check that a protocol's data is present, complete and readable.

For every split of a protocol it counts images (and videos) per class, compares the sources'
counts with the published ones (``about.expected`` in ``sources.yaml``), and, file by file, finds
zero-byte, missing, truncated and undecodable images and byte-identical duplicates (sha256); it
also counts the conversions decoding needed (by kind), files the sources left out, and the notes
they made. It streams: one file is read at a time, and beyond the resolved tables only a digest ->
first-row map is kept, so memory does not grow with file sizes. The report text and the final
error sentence are made by :mod:`bench.data.verify_report`.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.data.base import CONVERSIONS, PathEscapeError, Source, decode_file
from bench.data.splits import build_source, resolve_split
from bench.errors import DataError, ImageError
from bench.protocol import PairedTest, Split, load_protocol
from bench.protocol.rounds import round_protocols

CHUNK = 1 << 20


@dataclass
class SplitCounts:
    """Counts of one resolved protocol split (``train``, ``val`` or ``test/<name>``; ``r<k>/train`` in rounds)."""

    name: str
    n_real: int
    n_fake: int
    videos_real: int | None = None
    videos_fake: int | None = None
    frames_per_group: int | None = None


@dataclass
class CountCheck:
    """A published count compared with the data: ``key`` is a subset, ``real``, ``fake`` or ``all``."""

    source: str
    split: str
    key: str
    unit: str
    expected: int
    found: int


@dataclass
class VerifyReport:
    """Everything ``bench data verify`` found; :func:`problems` lists what makes the data unusable."""

    protocol: str
    data_root: str
    splits: list[SplitCounts] = field(default_factory=list)
    #: Splits that could not be resolved (missing data, bad manifest, paths leaving the data root).
    errors: list[str] = field(default_factory=list)
    counts: list[CountCheck] = field(default_factory=list)
    #: (source, id, reason) for zero-byte, missing, truncated or undecodable files.
    bad_files: list[tuple[str, str, str]] = field(default_factory=list)
    #: (source, id, source, id of the first file with the same bytes, same label?).
    duplicates: list[tuple[str, str, str, str, bool]] = field(default_factory=list)
    #: (split, video id, frames found, frames wanted).
    short_videos: list[tuple[str, str, int, int]] = field(default_factory=list)
    files_checked: int = 0
    #: Conversion kind -> number of decoded files that needed it (``none`` excluded).
    conversions: dict[str, int] = field(default_factory=dict)
    #: split -> reason -> files the sources saw but did not read (``<source>:<path>``).
    ignored: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: What the sources noted while reading (e.g. video ids qualified by subset).
    notes: list[str] = field(default_factory=list)
    #: Summaries of the ``bench data faces`` reports found beside the protocol's manifests.
    face_reports: list[str] = field(default_factory=list)


def _parts(spec: Split | PairedTest) -> list[Split]:
    return [spec.real, spec.fake] if isinstance(spec, PairedTest) else [spec]


def file_path(source: Source, item_id: str) -> Path | None:
    """The file behind ``item_id`` for file-backed sources (manifest, folder), else None."""
    return source.file_path(item_id)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _expected_counts(report: VerifyReport, sources: dict[str, Source], used: set[tuple[str, str]]) -> None:
    for source_name, split in sorted(used):
        source = sources[source_name]
        expected = (getattr(source, "about", {}) or {}).get("expected") or {}
        wanted = expected.get(split)
        if not wanted:
            continue
        unit = expected.get("unit", "images")
        try:
            table = source.select(split)
        except DataError:
            continue  # already reported as an unresolvable split
        key = "group" if unit == "videos" else "id"
        found = {"all": table[key].nunique(), "real": table.loc[table["label"] == 0, key].nunique(),
                 "fake": table.loc[table["label"] == 1, key].nunique()}
        found.update(table.groupby("subset")[key].nunique().to_dict())
        for name, count in wanted.items():
            report.counts.append(CountCheck(source_name, split, str(name), unit, int(count), int(found.get(name, 0))))


def _face_reports(report: VerifyReport, sources: dict[str, Source], used: set[tuple[str, str]]) -> None:
    """Add what face extraction dropped (videos that failed, frames without a face) for each dataset folder."""
    from bench.data.faces.report import describe

    folders = {sources[name].image_root() for name, _ in used if hasattr(sources[name], "image_root")}
    for folder in sorted(folders):
        try:
            report.face_reports += describe(folder)
        except DataError as err:  # a damaged report does not make the frames unusable
            report.face_reports.append(str(err))


def _check_file(source: Source, item_id: str, check_images: bool, hash_files: bool,
                conversions: Counter) -> tuple[str | None, str | None]:
    """(problem, sha256) of one file; problem is None when it is fine. Counts decoding's conversions."""
    try:
        path = source.file_path(item_id)
    except DataError as err:
        return str(err), None
    if path is None:  # in-memory or remote sources: decoding is the only check
        if check_images and source.has_files:
            try:
                conversions[source.load_with_info(item_id)[1]] += 1
            except ImageError as err:
                return str(err), None
        return None, None
    try:
        if os.stat(path).st_size == 0:
            return f"{path} is a zero-byte file", None
        digest = sha256_file(path) if hash_files else None
    except FileNotFoundError:
        return f"{path} does not exist", None
    except OSError as err:
        return f"{path} cannot be read ({err.strerror})", None
    if check_images:
        try:
            image, kind = decode_file(path)
            image.close()
            conversions[kind] += 1
        except ImageError as err:
            return str(err), digest
    return None, digest


def verify_protocol(protocol_name_or_path: str | Path, data_root: str | Path | None, check_images: bool = True,
                    progress: Callable[[int, int], None] | None = None, hash_files: bool = True) -> VerifyReport:
    """Verify the data of a protocol (by name or ``.yaml`` path) under ``data_root``.

    ``check_images`` decodes every file (otherwise only existence, size and hashes are checked);
    ``progress(done, total)`` is called after each file; ``hash_files=False`` skips the duplicate
    search (with ``check_images=False`` too, only existence and size are checked). Configuration
    errors (unknown protocol, bad source spec) raise; data problems, and source paths that leave the
    data root, are collected in the report.
    """
    proto = load_protocol(protocol_name_or_path)
    root = Path(data_root) if data_root is not None else None
    report = VerifyReport(proto.name, str(root) if root else "")
    sources, escaping = {}, {}
    for name in proto.sources:
        try:
            sources[name] = build_source(proto, name, root)
        except PathEscapeError as err:
            escaping[name] = str(err)
    report.errors += list(escaping.values())
    specs = {}
    for plan, own in round_protocols(proto):  # a temporal protocol: each round's train and val, not the templates
        at = f"r{plan.index}/" if plan is not None else ""
        specs.update({f"{at}train": own.train, f"{at}val": own.val, **{f"test/{n}": s for n, s in own.test.items()}})
    tables, used = [], set()
    for key, spec in specs.items():
        parts = _parts(spec)
        if any(p.source in escaping for p in parts):
            continue
        try:
            resolved = resolve_split(key, spec, sources)
        except DataError as err:
            report.errors.append(f"{key}: {err}")
            continue
        used.update((p.source, p.split) for p in parts)
        table = resolved.table
        n_real, n_fake = resolved.counts()
        counts = SplitCounts(key, n_real, n_fake)
        fpg = next((p.frames_per_group for p in parts if p.frames_per_group), None)
        if fpg:
            counts.frames_per_group = fpg
            counts.videos_real = int(table.loc[table["label"] == 0, "group"].nunique())
            counts.videos_fake = int(table.loc[table["label"] == 1, "group"].nunique())
            # Sampling keeps min(k, n) frames per video, so fewer than k here means fewer on disk.
            if not any(p.max_per_class for p in parts):
                sizes = table.groupby("group").size()
                report.short_videos += [(key, str(g), int(n), fpg) for g, n in sizes[sizes < fpg].items()]
        report.splits.append(counts)
        if resolved.ignored:
            report.ignored[key] = resolved.ignored
        report.notes += [note for note in resolved.notes if note not in report.notes]
        tables.append(table[["source", "id", "label"]])
    _expected_counts(report, sources, used)
    _face_reports(report, sources, used)
    if not tables:
        return report
    # Each file once, even when several test sets share it (UnivFD's LAION reals).
    files = pd.concat(tables).drop_duplicates(["source", "id"]).reset_index(drop=True)
    first: dict[bytes, int] = {}
    total = len(files)
    conversions: Counter = Counter()
    for row, (source_name, item_id, label) in enumerate(files.itertuples(index=False)):
        problem, digest = _check_file(sources[source_name], item_id, check_images, hash_files, conversions)
        if problem:
            report.bad_files.append((source_name, item_id, problem))
        if digest is not None:
            key = bytes.fromhex(digest)
            if key in first:
                other = files.iloc[first[key]]
                report.duplicates.append((source_name, item_id, other["source"], other["id"],
                                          int(other["label"]) == int(label)))
            else:
                first[key] = row
        report.files_checked += 1
        if progress is not None:
            progress(row + 1, total)
    report.conversions = {kind: conversions[kind] for kind in CONVERSIONS[1:] if conversions[kind]}
    return report


__all__ = ["CountCheck", "SplitCounts", "VerifyReport", "verify_protocol"]
