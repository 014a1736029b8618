"""``bench leaderboard build``: every generated file from the stored results, and the freshness check.

Generated under the leaderboard directory: ``<protocol>.md`` per protocol name (and ``<family>.md`` per
protocol family, :mod:`bench.leaderboard.matrix`), ``index.json`` (the
tables as data, documented in docs/leaderboard.md) and ``figures/<protocol>/v<version>/*.png``;
optionally the README block and a static HTML site. Text output depends only on the result files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from bench.leaderboard.aggregate import Table, tables
from bench.leaderboard.collect import load_dir
from bench.leaderboard.figures import Figure, figures
from bench.leaderboard.layout import Block, to_markdown
from bench.leaderboard.matrix import family_blocks
from bench.leaderboard.tables import HEADER, page, readme_block

INDEX_SCHEMA = 3


@dataclass
class Board:
    """Everything a build produces, before anything is written (``families``: each family page's blocks)."""

    text: dict[Path, str]
    figures: dict[Path, Figure]
    tables: dict[str, list[Table]]
    families: dict[str, list[Block]]


def compute(leaderboard_dir: Path, readme: Path | None = None) -> Board:
    """Read the results, aggregate them and lay out every generated file (nothing is written)."""
    lb = Path(leaderboard_dir)
    by_name = tables(load_dir(lb))
    newest = {name: versions[0] for name, versions in by_name.items()}
    text: dict[Path, str] = {}
    pictures: dict[Path, Figure] = {}
    for name, versions in by_name.items():
        listed: dict[int, list[tuple[str, str]]] = {}
        for table in versions:
            folder = Path("figures", name, f"v{table.data['version']}")
            figs = figures(table, newest)
            table.data["figures"] = [(folder / f.file).as_posix() for f in figs]
            listed[table.data["version"]] = [((folder / f.file).as_posix(), f.caption) for f in figs]
            pictures.update({lb / folder / f.file: f for f in figs})
        text[lb / f"{name}.md"] = page(name, [t.data for t in versions], listed)
    families = family_blocks(newest)  # e.g. GenImage's 8 x 8 matrix
    for family, blocks in families.items():
        text[lb / f"{family}.md"] = HEADER + "\n\n" + to_markdown(blocks)
    index = {"schema_version": INDEX_SCHEMA, "protocols": [t.data for vs in by_name.values() for t in vs]}
    text[lb / "index.json"] = json.dumps(index, indent=2, ensure_ascii=False) + "\n"
    if readme is not None:
        text[Path(readme)] = readme_block(Path(readme), lb, {n: [t.data for t in vs] for n, vs in by_name.items()})
    return Board(text, pictures, by_name, families)


def render(leaderboard_dir: Path, readme: Path | None = None) -> dict[Path, str]:
    """Return ``{path: content}`` of every generated text file without writing anything."""
    return compute(leaderboard_dir, readme).text


def build(leaderboard_dir: Path, readme: Path | None = None, html: Path | None = None) -> list[Path]:
    """Write the pages, ``index.json``, the figures (and the README block, and the site in ``html``).

    Figures no longer produced are removed from ``figures/``. Returns the written paths, sorted.
    """
    lb = Path(leaderboard_dir)
    board = compute(lb, readme)
    for path, text in board.text.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    for path, figure in board.figures.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.draw(path)
    for old in sorted((lb / "figures").rglob("*.png")) if (lb / "figures").is_dir() else []:
        if old not in board.figures:
            old.unlink()
    written = [*board.text, *board.figures]
    if html is not None:
        from bench.leaderboard.site import write_site

        written += write_site(board, lb, Path(html))
    return sorted(written)


def check_fresh(leaderboard_dir: Path, readme: Path | None = None) -> list[str]:
    """Generated files that differ from a fresh build (text compared exactly, figures by existence).

    Names are posix paths relative to the leaderboard directory's parent, e.g.
    ``["leaderboard/universal.md"]``; an empty list means the committed files are up to date.
    """
    lb = Path(leaderboard_dir)
    board = compute(lb, readme)
    stale = [p for p, text in board.text.items() if not p.is_file() or p.read_text("utf-8") != text]
    stale += [p for p in board.figures if not p.is_file()]
    return sorted(Path(os.path.relpath(p, lb.parent)).as_posix() for p in stale)
