"""Pictures of a protocol's table: heatmap of detectors × test sets, ROC per group, metric against degradation.

Each :class:`Figure` has a file name and a caption (part of the page, so the freshness check covers
them) and draws itself on matplotlib's Agg canvas; PNG bytes are not compared anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.leaderboard.aggregate import Table
from bench.leaderboard.robustness import KINDS, protocol_variants, within_protocol
from bench.leaderboard.style import detector_colours, new_figure

_GRID = np.linspace(0.0, 1.0, 201)


@dataclass
class Figure:
    """One PNG of a page: ``file`` (name only), ``caption`` (markdown) and how to draw it."""

    file: str
    caption: str
    draw: Callable[[Path], None]


def row_label(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The detector name, with its config hash when two rows share the name, and how it was made."""
    label = entry["detector"]
    if sum(e["detector"] == label for e in entries) > 1:
        label += f" {entry['config_sha256'][:6]}"
    return label if entry["origin"]["rankable"] else f"{label} ({entry['origin']['kind'].replace('_', '-')})"


def figures(table: Table, newest: dict[str, Table]) -> list[Figure]:
    """The figures of ``table``; ``newest`` maps every protocol on the board to its newest table."""
    t = table.data
    rows = t["entries"] + t["unranked"]
    out = [Figure("heatmap.png", f"{t['metric']} per test set and detector, mean over seeds.",
                  lambda p: _heatmap(t, rows, p))]
    if table.frames:
        out.append(Figure("roc.png", "ROC curves per group: the true-positive rate at each false-positive rate, "
                          "averaged vertically over the group's test sets and the seeds (runs with stored "
                          "predictions only).", lambda p: _roc(table, rows, p)))
    panels = [{**p, "values": _test_points(t, rows, p)} for p in within_protocol(table.definition)]
    others = {name: tb.definition for name, tb in newest.items()}
    for panel in protocol_variants(table.definition, others):
        points = [(None, t["name"])] + panel["points"]
        values = {}
        for e in rows:
            cells = [_primary_of(newest.get(name, table) if name != t["name"] else table, e) for _, name in points]
            values[row_label(e, rows)] = cells
        panels.append({"kind": panel["kind"], "points": panel["points"], "values": values, "protocols": True})
    if panels:
        kinds = ", ".join(dict.fromkeys(KINDS[p["kind"]][0] for p in panels))
        combined = sorted({c for p in panels for c in p.get("combined", [])})
        note = f" Combined degradations ({', '.join(combined)}) are not drawn." if combined else ""
        out.append(Figure("robustness.png", f"{t['metric']} against degradation strength ({kinds}); bars: 95% "
                          f"intervals where predictions are stored.{note}", lambda p: _robustness(t, panels, p)))
    return out


def _test_points(t: dict[str, Any], rows: list[dict[str, Any]], panel: dict[str, Any]) -> dict[str, list]:
    tests = [panel["clean"]] + [test for _, test in panel["points"]]
    return {row_label(e, rows): [e["metrics"][test].get(t["metric"]) for test in tests] for e in rows}


def _primary_of(table: Table, entry: dict[str, Any]) -> dict[str, Any] | None:
    for other in table.data["entries"] + table.data["unranked"]:
        if (other["detector"], other["config_sha256"]) == (entry["detector"], entry["config_sha256"]):
            return other["primary"]
    return None


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110, metadata={"Software": None})


def _heatmap(t: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    values = np.array([[(e["metrics"][s].get(t["metric"]) or {}).get("mean", np.nan) for s in t["tests"]]
                       for e in rows], dtype=float)
    fig, (ax,) = new_figure(1, width=max(6.0, 0.45 * len(t["tests"]) + 2.5), height=1.6 + 0.42 * len(rows))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(t["tests"])), t["tests"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [row_label(e, rows) for e in rows], fontsize=9)
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > middle else "white")
    fig.colorbar(image, ax=ax, label=t["metric"])
    fig.suptitle(f"{t['name']} v{t['version']}: {t['metric']} per test set (mean over seeds)")
    _save(fig, path)


def roc_points(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """True-positive rate at each false-positive rate of :data:`_GRID` (the ROC's upper step)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(bool)
    last = np.r_[s[1:] != s[:-1], True]  # one ROC point per distinct score
    tpr = np.r_[0.0, np.cumsum(y)[last] / y.sum()]
    fpr = np.r_[0.0, np.cumsum(~y)[last] / (~y).sum()]
    return tpr[np.searchsorted(fpr, _GRID, side="right") - 1]


def _roc(table: Table, rows: list[dict[str, Any]], path: Path) -> None:
    t = table.data
    groups = dict(t["groups"]) or {"all test sets": list(t["tests"])}
    cols = min(4, len(groups))
    nrows = -(-len(groups) // cols)
    fig, axes = new_figure(cols, width=3.6, height=3.4, nrows=nrows)
    colours = detector_colours(e["detector"] for e in rows)
    curves: dict[tuple[str, str], np.ndarray] = {}
    for run_id, frame in table.frames.items():
        frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
        for test, part in frame.groupby("test_set", sort=False):
            curves[run_id, str(test)] = roc_points(part["score"].to_numpy(dtype=float), part["label"].to_numpy())
    for ax, (group, members) in zip(axes, groups.items()):
        for e in rows:
            keys = [f"{e['detector']}/{r}" for r in e["run_ids"]]
            stack = [curves[k, m] for k in keys for m in members if (k, m) in curves]
            if not stack:
                continue
            style = "-" if e["origin"]["rankable"] else ":"
            ax.plot(_GRID, np.mean(stack, axis=0), style, color=colours[e["detector"]], label=row_label(e, rows))
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_aspect("equal")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{t['name']} v{t['version']}: ROC per group (vertical average over test sets and seeds)")
    _save(fig, path)


def _robustness(t: dict[str, Any], panels: list[dict[str, Any]], path: Path) -> None:
    fig, axes = new_figure(len(panels), width=4.2, height=3.6)
    colours = detector_colours(e["detector"] for e in t["entries"] + t["unranked"])
    for ax, panel in zip(axes, panels):
        name = KINDS[panel["kind"]][0]
        ticks = ["none"] + [f"{level:g}" for level, _ in panel["points"]]
        for label, cells in panel["values"].items():
            xs = [i for i, c in enumerate(cells) if c]
            ys = np.array([cells[i]["mean"] for i in xs])
            lo = np.array([cells[i]["lo"] if cells[i]["lo"] is not None else cells[i]["mean"] for i in xs])
            hi = np.array([cells[i]["hi"] if cells[i]["hi"] is not None else cells[i]["mean"] for i in xs])
            ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], marker="o", capsize=3, label=label,
                        color=colours.get(label.split(" ")[0], "black"))
        ax.set_xticks(range(len(ticks)), ticks)
        where = " (variant protocols)" if panel.get("protocols") else ""
        ax.set_xlabel(f"{name}{where}; stronger →", fontsize=8)
        ax.set_ylabel(t["metric"] if not panel.get("protocols") else t["primary"])
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{t['name']} v{t['version']}: {t['metric']} against degradation strength")
    _save(fig, path)
