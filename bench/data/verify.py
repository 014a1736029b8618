"""``bench data verify``: check that a protocol's data is present, complete and readable.

For every split of a protocol it counts images (and videos) per class, compares the sources'
counts with the published ones (``about.expected`` in ``sources.yaml``), and, file by file, finds
zero-byte, missing, truncated and undecodable images and byte-identical duplicates (sha256). It
streams: one file is read at a time, and beyond the resolved tables only a digest -> first-row map
is kept, so memory does not grow with file sizes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.data.base import Source, open_image
from bench.data.manifest import inside
from bench.data.splits import build_sources, resolve_split
from bench.errors import DataError, ImageError
from bench.protocol import PairedTest, Split, load_protocol

CHUNK = 1 << 20


@dataclass
class SplitCounts:
    """Counts of one resolved protocol split (``train``, ``val`` or ``test/<name>``)."""

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
    #: Summaries of the ``bench data faces`` reports found beside the protocol's manifests.
    face_reports: list[str] = field(default_factory=list)


def _parts(spec: Split | PairedTest) -> list[Split]:
    return [spec.real, spec.fake] if isinstance(spec, PairedTest) else [spec]


def file_path(source: Source, item_id: str) -> Path | None:
    """The file behind ``item_id`` for file-backed sources (manifest, folder), else None."""
    if hasattr(source, "image_root"):
        return source.image_root() / item_id
    if source.type_name == "folder":
        return source.resolve(source.spec["root"]) / item_id
    return None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _escapes(source: Source) -> str | None:
    """A message when a source's own path/root spec leaves the data root, else None."""
    for key in ("path", "root"):
        value = source.spec.get(key)
        if isinstance(value, str) and not inside(value):
            return (f"Source {source.name!r} has {key} {value!r}, which leaves the data root; use a path "
                    "relative to the data root without '..'.")
    return None


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


def _check_file(source: Source, item_id: str, check_images: bool, hash_files: bool) -> tuple[str | None, str | None]:
    """(problem, sha256) of one file; problem is None when it is fine."""
    path = file_path(source, item_id)
    if path is None:  # in-memory or remote sources: decoding is the only check
        if check_images and source.has_files:
            try:
                source.load(item_id)
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
            open_image(path).close()
        except ImageError as err:
            return str(err), digest
    return None, digest


def verify_protocol(protocol_name_or_path: str | Path, data_root: str | Path | None, check_images: bool = True,
                    progress: Callable[[int, int], None] | None = None, hash_files: bool = True) -> VerifyReport:
    """Verify the data of a protocol (by name or ``.yaml`` path) under ``data_root``.

    ``check_images`` decodes every file (otherwise only existence, size and hashes are checked);
    ``progress(done, total)`` is called after each file; ``hash_files=False`` skips the duplicate
    search (with ``check_images=False`` too, only existence and size are checked: a cheap pre-run check). Configuration errors (unknown protocol,
    bad source spec) raise; data problems are collected in the report.
    """
    proto = load_protocol(protocol_name_or_path)
    root = Path(data_root) if data_root is not None else None
    report = VerifyReport(proto.name, str(root) if root else "")
    sources = build_sources(proto, root)
    escaping = {name: msg for name, source in sources.items() if (msg := _escapes(source))}
    report.errors += list(escaping.values())
    specs = {"train": proto.train, "val": proto.val, **{f"test/{n}": s for n, s in proto.test.items()}}
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
        tables.append(table[["source", "id", "label"]])
    _expected_counts(report, sources, used)
    _face_reports(report, sources, used)
    if not tables:
        return report
    # Each file once, even when several test sets share it (UnivFD's LAION reals).
    files = pd.concat(tables).drop_duplicates(["source", "id"]).reset_index(drop=True)
    first: dict[bytes, int] = {}
    total = len(files)
    for row, (source_name, item_id, label) in enumerate(files.itertuples(index=False)):
        problem, digest = _check_file(sources[source_name], item_id, check_images, hash_files)
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
    return report


def problems(report: VerifyReport) -> list[str]:
    """What makes the data unusable, one sentence each; empty when a run can go ahead.

    Unusable: unresolvable splits (missing data, paths leaving the data root), unreadable files,
    one-class val/test sets, and identical files labelled both real and fake. Count mismatches,
    same-label duplicates and short videos are warnings only (see :func:`format_report`).
    """
    out = list(report.errors)
    out += [f"{source}: {reason}" for source, _, reason in report.bad_files]
    for split in report.splits:
        if split.name != "train" and (split.n_real == 0 or split.n_fake == 0):
            out.append(f"{split.name} has {split.n_real} real and {split.n_fake} fake images; it needs both.")
    out += [f"{s}:{i} and {s2}:{i2} have identical bytes but different labels"
            for s, i, s2, i2, same in report.duplicates if not same]
    return out


def format_report(report: VerifyReport, limit: int = 20) -> str:
    """A plain-text report: counts per split, published counts, then each kind of problem (``limit`` lines each)."""
    lines = [(f"Protocol {report.protocol}, data root {report.data_root or '(none)'}; "
             f"{report.files_checked} file(s) checked.")]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {item}" for item in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")

    rows = []
    for s in report.splits:
        videos = f", videos {s.videos_real} real / {s.videos_fake} fake ({s.frames_per_group} frames each)" \
            if s.frames_per_group else ""
        rows.append(f"{s.name}: {s.n_real} real / {s.n_fake} fake images{videos}")
    section("Splits", rows)
    section("Published counts", [
        f"{c.source} {c.split} {c.key}: {c.found} {c.unit} (published {c.expected})"
        + ("" if c.found == c.expected else "  <-- differs") for c in report.counts])
    section("Errors", report.errors)
    section("Unreadable files", [reason for _, _, reason in report.bad_files])
    section("Duplicate files", [
        f"{s}:{i} = {s2}:{i2}" + ("" if same else " (labelled differently)") for s, i, s2, i2, same in report.duplicates])
    section("Face extraction reports (bench data faces)", report.face_reports)
    section("Videos with fewer frames than frames_per_group", [
        f"{split} {group}: {n} of {k}" for split, group, n, k in report.short_videos])
    found = problems(report)
    lines.append("Data is usable." if not found else f"{len(found)} problem(s) make the data unusable.")
    return "\n".join(lines)
