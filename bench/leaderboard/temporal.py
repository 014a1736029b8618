"""Temporal protocols on the leaderboard: the per-round table, the figure against round, each round's threshold.

A temporal run (:mod:`bench.protocol.rounds`) stores its rounds' test sets under their own names
(``r1_next``, ``r1_growing``, ...) and the groups ``next`` and ``growing``, so the table machinery
already computes what the page needs: each round's next-period AUC with its bootstrap interval
over that round's test images, and the primary ``auc@next``, the mean over rounds, with its
interval from the same resamples (:mod:`bench.leaderboard.aggregate`) and rank intervals from
:mod:`bench.leaderboard.stats`. Here those cells are laid out by round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.leaderboard.layout import Block, Cell, metric_cell
from bench.leaderboard.style import detector_colours, new_figure


def thresholds_by_test(result: dict[str, Any]) -> dict[str, float | None]:
    """The validation threshold behind each test set's ``acc_val_thr``: the run's, or in a temporal run its round's."""
    rounds = result.get("rounds")
    if rounds:
        return {test: (r.get("threshold") or {}).get("value") for r in rounds for test in r["tests"].values()}
    value = (result.get("threshold") or {}).get("value")
    return {test: value for test in result["protocol"]["tests"]}


def rounds_of(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The rounds of a temporal result as a table shows them (data only: no selection), or None."""
    rounds = result.get("rounds")
    if not rounds:
        return None
    return [{k: r[k] for k in ("round", "train", "next", "growing", "tests", "init")} for r in rounds]


def blocks(t: dict[str, Any], labels: list[str]) -> list[Block]:
    """The per-round table of a temporal protocol's page (nothing for other protocols)."""
    rounds = t.get("rounds")
    if not rounds:
        return []
    metric = t["metric"]
    rows = t["entries"] + t["unranked"]
    headers = ["detector", *(f"round {r['round']}" for r in rounds), f"mean ({t['primary']})", f"growing ({metric})"]
    table = [[Cell(name), *(metric_cell(e["metrics"][r["tests"]["next"]].get(metric)) for r in rounds),
              metric_cell(e["groups"]["next"].get(metric)), metric_cell(e["groups"]["growing"].get(metric))]
             for name, e in zip(labels, rows)]
    windows = "; ".join(f"round {r['round']}: train on {len(r['train'])} ({r['init']}), next {', '.join(r['next'])}"
                        for r in rounds)
    return [Block("heading", f"Next period per round ({metric})", level=3),
            Block("text", f"Each round trains on the generators released so far and is tested on the next window "
                          f"(its next period) and on every window it trained on (growing); {windows}. Cells: the "
                          "mean over seeds with the 95% interval over that round's test images; the mean column "
                          "is the primary (the mean over rounds, its interval from the same resamples)."),
            Block("table", headers=headers, rows=table)]


def next_period_figure(t: dict[str, Any], rows: list[dict[str, Any]], labels: list[str]):
    """The metric on the next period against round, one line per row, its 95% interval as bars.

    Rows sit side by side around each round (spread over at most 0.6 of a round), so twenty rows'
    bars stay apart; the growing sets are in the page's table, not here, to keep one line per row.
    """
    rounds = t["rounds"]
    metric = t["metric"]
    fig, (ax,) = new_figure(1, width=6.0 if len(rows) <= 12 else 10.0, height=4.0)
    colours = detector_colours(e["detector"] for e in rows)
    xs = np.array([r["round"] for r in rounds], dtype=float)
    spread = min(0.3, 0.03 * (len(rows) - 1))
    for offset, e, label in zip(np.linspace(-spread, spread, len(rows)), rows, labels):
        cells = [e["metrics"][r["tests"]["next"]].get(metric) or {} for r in rounds]
        ys = np.array([np.nan if c.get("mean") is None else c["mean"] for c in cells], dtype=float)
        lo = np.array([y if c.get("lo") is None else c["lo"] for c, y in zip(cells, ys)], dtype=float)
        hi = np.array([y if c.get("hi") is None else c["hi"] for c, y in zip(cells, ys)], dtype=float)
        ax.errorbar(xs + offset, ys, yerr=[ys - lo, hi - ys], marker="o", markersize=3, capsize=2,
                    linewidth=1, elinewidth=0.8, color=colours[e["detector"]], label=label)
    ax.set_xticks(xs, [str(r["round"]) for r in rounds])
    ax.set_xlabel("round (tested on the window after the ones it trained on)")
    ax.set_ylabel(f"{metric} on the next period")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right center", fontsize=7, ncols=2 if len(rows) > 12 else 1)
    fig.suptitle(f"{t['name']} v{t['version']}: {metric} on the next period against round")
    return fig
