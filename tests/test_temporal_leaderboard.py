"""A temporal protocol's page: next-period AUC per round, the mean over rounds ranked, the figure against round."""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest
from board import commit, make_result, predictions
from test_temporal import TEMPORAL

from bench.leaderboard import build
from bench.leaderboard.aggregate import tables
from bench.leaderboard.collect import load_dir
from bench.leaderboard.figures import figures
from bench.metrics import compute_metrics, group_means
from bench.protocol import parse_protocol
from bench.protocol.rounds import round_protocols
from bench.run.rounds import Round, RoundResult
from bench.run.rounds import record as rounds_record

ORDER = "upsample_nearest, blend_ellipse, peaks_p4, inpaint_smooth, resynth_lowpass, peaks_grid8"
PROTO = parse_protocol(TEMPORAL.format(name="temporal", order=ORDER, training="cumulative", init="fresh"),
                       "temporal.yaml")


def temporal_result(detector: str, seed: int, separation: float, noise_seed: int) -> tuple[dict, pd.DataFrame]:
    """A temporal result (rounds recorded by the run's own writer) whose metrics are those of its scores."""
    tests = list(PROTO.test)
    frame = predictions(separation, seed, tests=tests, noise_seed=noise_seed)
    metrics = {t: compute_metrics(p["label"], p["score"], PROTO.metrics, where=t)
               for t, p in frame.groupby("test_set", sort=False)}
    rounds, done = [], []
    for plan, own in round_protocols(PROTO):
        names = {k: SimpleNamespace(name=f"r{plan.index}_{k}") for k in ("train", "val")}
        rounds.append(Round(plan, own, names, "fresh"))
        done.append(RoundResult({"rule": "best:auc", "epoch": 2}, {"rule": "max_balanced_accuracy_on_val",
                                "split": f"r{plan.index}_val", "value": 0.1 * plan.index}, pd.DataFrame(),
                                {}, {}, 1.0, 1.0))
    result = make_result(detector, seed)  # the tiny protocol's result, its protocol's parts replaced
    result.update(metrics=metrics, groups=group_means(metrics, PROTO.groups), rounds=rounds_record(rounds, done))
    result["protocol"] = {"name": PROTO.name, "version": 1, "sha256": PROTO.sha256(), "primary": PROTO.primary,
                          "metrics": PROTO.metrics, "tests": tests, "groups": PROTO.groups,
                          "definition": PROTO.model_dump(mode="json")}
    return result, frame


def _board(lb, rows: int, seeds=(0,)):
    for d in range(rows):
        for seed in seeds:
            result, frame = temporal_result(f"detector_with_a_long_name_{d:02d}", seed, 0.4 + 0.06 * d, 10 * d + seed)
            commit(lb, result, frame)
    return lb


def test_the_page_lays_out_the_next_period_per_round_and_ranks_their_mean(tmp_path):
    lb = _board(tmp_path / "lb", 2, seeds=(0, 1))
    written = build(lb)
    assert lb / "figures/temporal/v1/next_period.png" in written
    page = (lb / "temporal.md").read_text()
    assert "primary: auc@next" in page and "![next_period](figures/temporal/v1/next_period.png)" in page
    section = page[page.index("### Next period per round (auc)"):]
    header = next(line for line in section.splitlines() if line.startswith("| detector"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["detector", "round 1", "round 2",
                                                                "mean (auc@next)", "growing (auc)"]
    (tb,) = tables(load_dir(lb), resamples=50)["temporal"]
    for e in tb.data["entries"]:
        per_round = [e["metrics"][f"r{k}_next"]["auc"]["mean"] for k in (1, 2)]
        assert e["groups"]["next"]["auc"]["mean"] == pytest.approx(sum(per_round) / 2)
        assert e["primary"]["mean"] == pytest.approx(e["groups"]["next"]["auc"]["mean"])
        lo, hi = e["primary"]["lo"], e["primary"]["hi"]
        assert lo < e["primary"]["mean"] < hi  # the mean over rounds has its bootstrap interval


@pytest.mark.parametrize("rows", [1, 20])
def test_the_next_period_figure_is_legible_with_one_row_and_with_twenty(tmp_path, rows):
    (tb,) = tables(load_dir(_board(tmp_path / "lb", rows)), resamples=50)["temporal"]
    (figure,) = [f for f in figures(tb, {"temporal": tb}) if f.file == "next_period.png"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = figure.render()
        fig.canvas.draw()
    assert not [w for w in caught if "collapsed" in str(w.message) or "layout" in str(w.message)]
    (ax,) = fig.axes
    box = ax.get_window_extent()
    assert box.height >= 150 and box.width >= 150, box
    for text in (ax.xaxis.label, ax.yaxis.label, fig._suptitle):  # whole, inside the picture
        inner = text.get_window_extent()
        assert inner.x0 >= 0 and inner.y0 >= 0 and inner.x1 <= fig.bbox.x1 and inner.y1 <= fig.bbox.y1
    assert len(ax.get_lines()) >= rows and [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    (legend,) = fig.legends
    assert len(legend.get_texts()) == rows
    outer = legend.get_window_extent()
    assert not outer.overlaps(box) and outer.x0 >= 0 and outer.y0 >= 0
    assert outer.x1 <= fig.bbox.x1 and outer.y1 <= fig.bbox.y1
    texts = [t.get_window_extent() for t in legend.get_texts()]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(texts, 2))
