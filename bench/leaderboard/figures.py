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
from bench.leaderboard.temporal import next_period_figure

_GRID = np.linspace(0.0, 1.0, 201)


@dataclass
class Figure:
    """One PNG of a page: ``file`` (name only), ``caption`` (markdown) and how to lay it out (``render``)."""

    file: str
    caption: str
    render: Callable[[], Any]  # returns the matplotlib figure, laid out on its own Agg canvas

    def draw(self, path: Path) -> None:
        """Render and save the PNG."""
        self.render().savefig(path, dpi=110, metadata={"Software": None})


def row_label(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The detector name, with its config hash when two rows share the name, how it was made, and unpublished."""
    label = entry["detector"]
    if sum(e["detector"] == label for e in entries) > 1 and entry.get("published", True):
        label += f" {entry['config_sha256'][:6]}"
    if not entry["origin"]["rankable"]:
        label += f" ({entry['origin']['kind'].replace('_', '-')})"
    return label if entry.get("published", True) else f"{label} (unpublished)"


def runs_text(rows: list[dict[str, Any]], predictions_only: bool = False) -> str:
    """Which runs a figure shows: ``seeds 0, 1, 2 of each of the 12 rows (36 runs)``."""
    rows = [e for e in rows if e["intervals"] == "bootstrap"] if predictions_only else rows
    seeds = {tuple(e["seeds"]) for e in rows}
    runs = sum(len(e["seeds"]) for e in rows)
    which = (f"seed{'s' if len(next(iter(seeds))) > 1 else ''} {', '.join(map(str, next(iter(seeds))))} of each "
             if len(seeds) == 1 else "every seed of each ")
    return f"{which}of the {len(rows)} rows ({runs} runs)" if len(rows) != 1 else f"{which}row ({runs} runs)"


def figures(table: Table, newest: dict[str, Table]) -> list[Figure]:
    """The figures of ``table``; ``newest`` maps every protocol on the board to its newest table."""
    t = table.data
    rows = t["entries"] + t["unranked"]
    out = [Figure("heatmap.png", f"{t['metric']} per test set and detector: the mean over {runs_text(rows)}.",
                  lambda: _heatmap(t, rows))]
    if table.frames:
        out.append(Figure("roc.png", "ROC curves per group: the true-positive rate at each false-positive rate, "
                          "averaged vertically over the group's test sets and over "
                          f"{runs_text(rows, predictions_only=True)}.", lambda: _roc(table, rows)))
    if t.get("rounds"):
        labels = [row_label(e, rows) for e in rows]
        out.append(Figure("next_period.png", f"{t['metric']} on the next period against round (one line per "
                          f"detector): the mean over {runs_text(rows)}; bars: 95% intervals over each round's "
                          "test images where predictions are stored.",
                          lambda: next_period_figure(t, rows, labels)))
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
        out.append(Figure("robustness.png", f"{t['metric']} against degradation strength ({kinds}): the mean over "
                          f"{runs_text(rows)}; bars: 95% intervals over test images where predictions are "
                          f"stored.{note}", lambda: _robustness(t, panels)))
    return out


def _test_points(t: dict[str, Any], rows: list[dict[str, Any]], panel: dict[str, Any]) -> dict[str, list]:
    tests = [panel["clean"]] + [test for _, test in panel["points"]]
    return {row_label(e, rows): [e["metrics"][test].get(t["metric"]) for test in tests] for e in rows}


def _primary_of(table: Table, entry: dict[str, Any]) -> dict[str, Any] | None:
    for other in table.data["entries"] + table.data["unranked"]:
        if (other["detector"], other["config_sha256"]) == (entry["detector"], entry["config_sha256"]):
            return other["primary"]
    return None


def _heatmap(t: dict[str, Any], rows: list[dict[str, Any]]):
    """Rows x test sets; the figure grows with both, so one row or twenty stay legible."""
    values = np.array([[((e["metrics"][s].get(t["metric"]) or {}).get("mean") or np.nan) for s in t["tests"]]
                       for e in rows], dtype=float)
    labels = [row_label(e, rows) for e in rows]
    longest = max((len(s) for s in t["tests"]), default=1)
    # inches: 0.5 per column and 0.38 per row for the cells (at least 1), room for the longest labels
    width = max(5.0, 0.5 * len(t["tests"]) + 0.075 * max(map(len, labels), default=8) + 2.2)
    height = max(1.0, 0.38 * len(rows)) + 0.065 * longest + 1.1
    fig, (ax,) = new_figure(1, width=width, height=height)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(t["tests"])), t["tests"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if image.norm(v) > 0.5 else "white")
    fig.colorbar(image, ax=ax, label=t["metric"], fraction=0.05 if len(rows) > 2 else 0.1)
    fig.suptitle(f"{t['name']} v{t['version']}: {t['metric']} per test set (mean over seeds)", fontsize=10)
    return fig


def roc_points(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """True-positive rate at each false-positive rate of :data:`_GRID` (the ROC's upper step)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(bool)
    last = np.r_[s[1:] != s[:-1], True]  # one ROC point per distinct score
    tpr = np.r_[0.0, np.cumsum(y)[last] / y.sum()]
    fpr = np.r_[0.0, np.cumsum(~y)[last] / (~y).sum()]
    return tpr[np.searchsorted(fpr, _GRID, side="right") - 1]


def _roc(table: Table, rows: list[dict[str, Any]]):
    t = table.data
    groups = dict(t["groups"]) or {"all test sets": list(t["tests"])}
    cols = min(4, len(groups))
    nrows = -(-len(groups) // cols)
    names = [row_label(e, rows) for e in rows if e["intervals"] == "bootstrap"]
    per_entry = 0.07 * max(map(len, names), default=8) + 0.7  # inches of one legend entry at fontsize 8
    ncols = max(1, min(len(names), int(3.4 * cols / per_entry)))
    legend = 0.2 * -(-len(names) // ncols) + 0.3  # the legend's rows grow the figure, never shrink the panels
    fig, axes = new_figure(cols, width=3.4, height=3.4 + legend / nrows, nrows=nrows)
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
            style = "-" if e["origin"]["rankable"] and e.get("published", True) else ":"
            ax.plot(_GRID, np.mean(stack, axis=0), style, color=colours[e["detector"]], label=row_label(e, rows))
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_aspect("equal")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=ncols)
    fig.suptitle(f"{t['name']} v{t['version']}: ROC per group (vertical average over test sets and seeds)")
    return fig


def _robustness(t: dict[str, Any], panels: list[dict[str, Any]]):
    fig, axes = new_figure(len(panels), width=3.8, height=3.6)
    colours = detector_colours(e["detector"] for e in t["entries"] + t["unranked"])
    offsets = np.linspace(-0.15, 0.15, max(1, len(panels[0]["values"])))  # bars side by side, not on top
    for ax, panel in zip(axes, panels):
        name = KINDS[panel["kind"]][0]
        ticks = ["none"] + [f"{level:g}" for level, _ in panel["points"]]
        for offset, (label, cells) in zip(offsets, panel["values"].items()):
            xs = [i for i, c in enumerate(cells) if c and c.get("mean") is not None]
            ys = np.array([cells[i]["mean"] for i in xs])
            lo = np.array([cells[i]["lo"] if cells[i]["lo"] is not None else cells[i]["mean"] for i in xs])
            hi = np.array([cells[i]["hi"] if cells[i]["hi"] is not None else cells[i]["mean"] for i in xs])
            ax.errorbar(np.array(xs) + offset, ys, yerr=[ys - lo, hi - ys], marker="o", markersize=3, capsize=2,
                        linewidth=1, label=label, color=colours.get(label.split(" ")[0], "black"))
        ax.set_xticks(range(len(ticks)), ticks)
        where = " (variant protocols)" if panel.get("protocols") else ""
        ax.set_xlabel(f"{name}{where}; stronger →", fontsize=8)
        ax.set_ylabel(t["metric"] if not panel.get("protocols") else t["primary"])
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    fig.suptitle(f"{t['name']} v{t['version']}: {t['metric']} against degradation strength")
    return fig
