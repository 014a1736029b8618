"""What ``bench data verify`` says: the full report, the problems by kind, and the one-sentence verdict.

The report lists every problem of every kind (no truncation). The verdict names every problem when
there are few (:data:`INLINE`), else the count per kind and the file where the full list was written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.data.verify import VerifyReport

#: Up to this many problems are named in the verdict itself; more are counted per kind and written to a file.
INLINE = 5
#: Examples shown per reason of files left out (they are warnings, and may be many).
IGNORED_EXAMPLES = 3


def problems_by_kind(report: VerifyReport) -> dict[str, list[str]]:
    """What makes the data unusable, one sentence each, grouped by kind (kinds without problems omitted).

    Unusable: unresolvable splits (missing data, paths leaving the data root), unreadable files,
    one-class val/test sets, and identical files labelled both real and fake. Count mismatches,
    same-label duplicates, short videos and files left out are warnings only.
    """
    kinds = {
        "unresolvable splits": list(report.errors),
        "unreadable files": [f"{source}: {reason}" for source, _, reason in report.bad_files],
        "one-class sets": [f"{s.name} has {s.n_real} real and {s.n_fake} fake images; it needs both."
                           for s in report.splits if s.name != "train" and (s.n_real == 0 or s.n_fake == 0)],
        "identical files with different labels": [
            f"{s}:{i} and {s2}:{i2} have identical bytes but different labels"
            for s, i, s2, i2, same in report.duplicates if not same],
    }
    return {kind: items for kind, items in kinds.items() if items}


def problems(report: VerifyReport) -> list[str]:
    """Every problem of :func:`problems_by_kind`, in one list; empty when a run can go ahead."""
    return [item for items in problems_by_kind(report).values() for item in items]


def format_report(report: VerifyReport, limit: int | None = None) -> str:
    """A plain-text report: counts per split, published counts, then every item of each kind of finding.

    ``limit`` caps the lines per section (default: none, every problem is listed).
    """
    lines = [(f"Protocol {report.protocol}, data root {report.data_root or '(none)'}; "
             f"{report.files_checked} file(s) checked.")]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"{title} ({len(items)}):")
            shown = items if limit is None else items[:limit]
            lines.extend(f"  {item}" for item in shown)
            if len(items) > len(shown):
                lines.append(f"  ... and {len(items) - len(shown)} more")

    rows = []
    for s in report.splits:
        videos = f", videos {s.videos_real} real / {s.videos_fake} fake ({s.frames_per_group} frames each)" \
            if s.frames_per_group else ""
        rows.append(f"{s.name}: {s.n_real} real / {s.n_fake} fake images{videos}")
    section("Splits", rows)
    section("Published counts", [
        f"{c.source} {c.split} {c.key}: {c.found} {c.unit} (published {c.expected})"
        + ("" if c.found == c.expected else "  <-- differs") for c in report.counts])
    section("Notes", report.notes)
    section("Conversions when decoding (by kind)", [f"{kind}: {n}" for kind, n in report.conversions.items()])
    ignored = []
    for split, reasons in report.ignored.items():
        for reason, paths in reasons.items():
            more = f", ... ({len(paths) - IGNORED_EXAMPLES} more)" if len(paths) > IGNORED_EXAMPLES else ""
            ignored.append(f"{split}: {len(paths)} {reason}: {', '.join(paths[:IGNORED_EXAMPLES])}{more}")
    section("Files left out (not read)", ignored)
    section("Errors", report.errors)
    section("Unreadable files", [reason for _, _, reason in report.bad_files])
    section("Duplicate files", [f"{s}:{i} = {s2}:{i2}" + ("" if same else " (labelled differently)")
                                for s, i, s2, i2, same in report.duplicates])
    section("Videos with fewer frames than frames_per_group", [
        f"{split} {group}: {n} of {k}" for split, group, n, k in report.short_videos])
    found = problems(report)
    lines.append("Data is usable." if not found else f"{len(found)} problem(s) make the data unusable.")
    return "\n".join(lines)


def write_problem_list(report: VerifyReport, directory: str | Path | None = None) -> Path:
    """Write every problem, by kind, to ``verify-<protocol>-problems.txt``; return its path.

    The file goes in ``directory`` (default: the current directory), or the system's temporary
    directory when that one is not writable.
    """
    text = []
    for kind, items in problems_by_kind(report).items():
        text.append(f"# {kind} ({len(items)})")
        text.extend(items)
    name = f"verify-{report.protocol}-problems.txt"
    for folder in (Path(directory) if directory is not None else Path.cwd(), Path(tempfile.gettempdir())):
        path = folder / name
        try:
            tmp = path.with_name(name + ".tmp")
            tmp.write_text("\n".join(text) + "\n", encoding="utf-8")
            os.replace(tmp, path)
            return path.resolve()
        except OSError:
            continue
    raise OSError(f"cannot write {name} in {directory or Path.cwd()} nor in {tempfile.gettempdir()}")


def failure_message(report: VerifyReport, directory: str | Path | None = None) -> str | None:
    """The verdict for the CLI's error: None when the data is usable, else one sentence naming every problem.

    Up to :data:`INLINE` problems are quoted; beyond that the sentence gives the count per kind and the
    path of the full list (written by :func:`write_problem_list` into ``directory``, default the
    current directory).
    """
    kinds = problems_by_kind(report)
    found = [item for items in kinds.values() for item in items]
    if not found:
        return None
    if len(found) <= INLINE:
        listed = "; ".join(p.rstrip(".") for p in found)
        return f"{len(found)} problem(s) make this data unusable: {listed}."
    counts = ", ".join(f"{len(items)} {kind}" for kind, items in kinds.items())
    try:
        where = f"the full list is in {write_problem_list(report, directory)}"
    except OSError as err:
        where = f"the full list is in the report above ({err})"
    return f"{len(found)} problem(s) make this data unusable ({counts}); {where}."
