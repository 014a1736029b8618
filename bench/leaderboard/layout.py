"""A page as blocks (headings, paragraphs, tables, figures), and the text of every number in it.

Pages are laid out once (:mod:`bench.leaderboard.tables`) and rendered twice, as Markdown (here) and
as HTML (:mod:`bench.leaderboard.site`), so the two always hold the same tables and the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

NOT_RECORDED = "not recorded"
NO_PREDICTIONS = "†"
BORDERLINE = "*"


@dataclass
class Cell:
    """One table cell: its text, the key an HTML table sorts it by, and whether it is a number."""

    text: str
    sort: str | None = None
    number: bool = False


@dataclass
class Block:
    """``heading`` (``level`` 2 or 3), ``text`` (a paragraph), ``table`` or ``figure``."""

    kind: str
    text: str = ""
    level: int = 2
    headers: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    text_columns: int = 1
    path: str = ""
    #: The last rows of a table that summarise the others (a mean row): kept last, never sorted in among them.
    summary_rows: int = 0


def metric_cell(stat: dict[str, Any] | None) -> Cell:
    """``0.704 [0.681, 0.727]`` with an interval; ``0.710 ± 0.003`` (std over seeds) without; or not recorded."""
    if stat is None or stat.get("mean") is None:
        return Cell(NOT_RECORDED, "", True)
    if stat.get("lo") is not None:
        text = f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]"
    else:
        spread = f" ± {stat['std']:.3f}" if stat.get("std") is not None else ""
        text = f"{stat['mean']:.3f}{spread}"
    return Cell(text, f"{stat['mean']:.6f}", True)


def p_text(p: float | None) -> str:
    """A p-value as read: ``0.047``, ``0.0012``, ``< 0.0001``; ``–`` for none."""
    if p is None:
        return "–"
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def count_text(n: dict[str, int] | None) -> str:
    """``100 / 1,600`` distinct real / fake images, with ``(40 videos)`` on frame datasets."""
    if not n:
        return NOT_RECORDED
    videos = f" ({n['n_videos']:,} videos)" if n.get("n_videos") is not None else ""
    return f"{n['n_real']:,} / {n['n_fake']:,}{videos}"


def number(value: float | None, digits: int = 0, unit: str = "") -> Cell:
    """A plain number with thousands separators, or not recorded."""
    if value is None:
        return Cell(NOT_RECORDED, "", True)
    text = f"{value:,.{digits}f}" if digits else f"{round(value):,}"
    return Cell(text + unit, f"{float(value):.6f}", True)


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown (pipe tables with aligned columns)."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            parts += ["", f"{'#' * block.level} {block.text}", ""]
        elif block.kind == "text":
            parts += [block.text, ""]
        elif block.kind == "table":
            align = ["left"] * block.text_columns + ["right"] * (len(block.headers) - block.text_columns)
            rows = [[c.text for c in row] for row in block.rows]
            parts += ["", tabulate(rows, block.headers, tablefmt="pipe", disable_numparse=True, colalign=align), ""]
        elif block.kind == "figure":
            parts += [f"![{block.path.rsplit('/', 1)[-1].rsplit('.', 1)[0]}]({block.path})  ", block.text, ""]
    text = "\n".join(parts)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n"
