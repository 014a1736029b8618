"""Protocol families laid out as a matrix: GenImage's train-on-one, test-on-all 8 x 8 table.

A family is a set of protocols named ``<family>_<training generator>`` that share their test sets
(``genimage_matrix_sd_v1_4``, ...). Each member protocol keeps its own page; the family page puts
their rows side by side, one matrix per detector: a row per training generator, a column per test
set, the mean over seeds of the protocol's primary metric, and the mean over training generators
under each column (GenImage's per-test mean). Training generators not run yet are listed, never
filled in.
"""

from __future__ import annotations

from typing import Any

from bench.leaderboard.aggregate import Table
from bench.leaderboard.layout import Block, Cell

#: Family name -> the training generators of its members, in the order the page lists them.
FAMILIES = {"genimage_matrix": ["midjourney", "sd_v1_4", "sd_v1_5", "adm", "glide", "wukong", "vqdm", "biggan"]}


def family_of(name: str) -> str | None:
    """The family a protocol name belongs to (``genimage_matrix_adm`` -> ``genimage_matrix``), or None."""
    return next((f for f, order in FAMILIES.items() if any(name == f"{f}_{g}" for g in order)), None)


def members(family: str, names: list[str]) -> list[str]:
    """The protocols of ``names`` that belong to ``family``, in the order its page lists them."""
    return [f"{family}_{g}" for g in FAMILIES[family] if f"{family}_{g}" in names]


def family_blocks(newest: dict[str, Table]) -> dict[str, list[Block]]:
    """``{family name: page blocks}`` for every family with at least one member on the leaderboard.

    The Markdown page (:mod:`bench.leaderboard.build`) and the HTML page (:mod:`bench.leaderboard.site`)
    both render these blocks.
    """
    out = {}
    for family, order in FAMILIES.items():
        found = {g: newest[f"{family}_{g}"].data for g in order if f"{family}_{g}" in newest}
        if found:
            out[family] = _blocks(family, order, found)
    return out


def _blocks(family: str, order: list[str], members: dict[str, dict[str, Any]]) -> list[Block]:
    first = next(iter(members.values()))
    metric, tests = first["metric"], list(first["tests"])
    missing = [g for g in order if g not in members]
    detectors = list(dict.fromkeys(e["detector"] for t in members.values() for e in t["entries"]))
    blocks = [Block("heading", f"Leaderboard: {family}", level=1),
              Block("text", f"One matrix per detector: a row per training generator (protocol "
                            f"{family}_<generator>), a column per test set; cells are {metric} on that test set, "
                            f"the mean over the row's ranked seeds of the detector's best-ranked configuration (each "
                            f"protocol's page has the intervals). The "
                            f"last row is the mean over the training generators shown, the last column the "
                            f"row's mean over test sets. Versions: "
                            + ", ".join(f"{family}_{g} v{t['version']}" for g, t in members.items()) + "."
                            + (f" Not run yet: {', '.join(missing)}." if missing else ""))]
    for detector in detectors:
        rows, by_row = [], {}
        for g, t in members.items():
            entry = next((e for e in t["entries"] if e["detector"] == detector), None)
            if entry is None:
                continue
            by_row[g] = [entry["metrics"][s][metric]["mean"] for s in tests]
        if not by_row:
            continue
        for g, values in by_row.items():
            rows.append([Cell(g), *(_cell(v) for v in values), _cell(sum(values) / len(values))])
        means = [sum(v[i] for v in by_row.values()) / len(by_row) for i in range(len(tests))]
        rows.append([Cell(f"mean over {len(by_row)} training generator(s)"), *(_cell(v) for v in means),
                     _cell(sum(means) / len(means))])
        blocks += [Block("heading", f"{detector} ({metric})", level=3),
                   Block("table", headers=["trained on \\ tested on", *tests, "mean"], rows=rows,
                         summary_rows=1)]
    return blocks


def _cell(value: float) -> Cell:
    return Cell(f"{value:.3f}", f"{value:.6f}", True)
