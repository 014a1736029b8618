"""Rank intervals, Holm and the marks, checked against brute force and an independent recomputation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from board import TINY, commit, make_result, predictions

from bench.leaderboard.aggregate import row_id, tables
from bench.leaderboard.collect import load_dir
from bench.leaderboard.stats import holm, paired_test, rank, resample_counts
from bench.metrics import compute_metrics


def holm_rejects(pvalues, alpha):
    """Holm's step-down procedure as written in the paper: stop at the first p above alpha / (m - j)."""
    order = np.argsort(pvalues, kind="stable")
    rejected = set()
    for j, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - j):
            break
        rejected.add(int(i))
    return rejected


def test_holm_adjusted_p_values_reject_exactly_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(0)
    for _ in range(300):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 12)) ** rng.uniform(1, 3))
        adjusted, _, _ = holm(p)
        assert all(a >= q for a, q in zip(adjusted, p)) and max(adjusted) <= 1.0
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, a in enumerate(adjusted) if a <= alpha} == holm_rejects(p, alpha)


def test_separated_rows_get_exact_ranks_and_identical_rows_share_an_interval():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.01, 5000)
    reps = {"a": 0.9 + noise, "b": 0.7 + noise * 1.1, "c": 0.5 + noise * 0.9}
    out = rank(reps, {"a": 0.9, "b": 0.7, "c": 0.5}, higher=True)
    assert out.interval == {"a": (1, 1), "b": (2, 2), "c": (3, 3)}
    assert out.could_be_first == {"a": True, "b": False, "c": False}
    twins = rank({"a": 0.8 + noise, "b": 0.8 + noise, "c": 0.2 + noise}, {"a": 0.8, "b": 0.8, "c": 0.2}, True)
    assert twins.rank == {"a": 1, "b": 1, "c": 3} and twins.interval["a"] == twins.interval["b"] == (1, 2)
    lower = rank(reps, {"a": 0.9, "b": 0.7, "c": 0.5}, higher=False)  # lower is better (EER): c first
    assert lower.interval["c"] == (1, 1) and lower.could_be_first["c"] and not lower.could_be_first["a"]


@pytest.mark.parametrize("seed", range(40))
def test_marks_and_rank_intervals_are_monotone_in_the_point_ranks(seed):
    """Heteroscedastic, correlated rows: raw tests may disagree with the order; the published marks never do."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(3, 12))
    means = np.sort(rng.uniform(0.5, 0.8, rows))[::-1]
    shared = rng.normal(0, 0.03, 2000)
    reps = {f"r{i}": m + rng.uniform(0, 1) * shared + rng.normal(0, rng.uniform(0.003, 0.06), 2000)
            for i, m in enumerate(means)}
    out = rank(reps, {f"r{i}": float(m) for i, m in enumerate(means)}, higher=True)
    order = [f"r{i}" for i in range(rows)]
    marks = [out.could_be_first[k] for k in order]
    assert marks == sorted(marks, reverse=True) and marks[0]  # a top block
    lows, highs = zip(*(out.interval[k] for k in order))
    assert list(lows) == sorted(lows) and list(highs) == sorted(highs)
    assert all(lo <= out.rank[k] <= hi for k, (lo, hi) in zip(order, zip(lows, highs)))


def test_the_paired_test_reads_the_normal_tail_of_the_bootstrap_difference():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.7, 0.02, 10_000), rng.normal(0.65, 0.02, 10_000)
    p, error = paired_test(a, b, 0.05)
    z = 0.05 / np.std(a - b, ddof=1)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12) and 0 < error < 0.005
    assert paired_test(a, a, 0.0) == (1.0, 0.0)


def _independent_primary(lb, resamples):
    """Replicates of auc@unseen per row, from the predictions files and bench.metrics on expanded data."""
    units = {label: resample_counts(40, resamples, cls, "synthetic", "synth", "test") for label, cls in
             ((0, "real"), (1, "fake"))}
    rows = {}
    for path in sorted((lb / "results" / "tiny").glob("*/*.json")):
        frame = __import__("pandas").read_csv(path.with_name(path.stem + ".predictions.csv.gz"))
        values = []
        for b in range(-1, resamples):  # -1: the observed test sets
            aucs = []
            for test in TINY.groups["unseen"]:
                part = frame[frame["test_set"] == test]
                index = part["id"].str.split("/").str[3].astype(int).to_numpy()
                counts = np.ones(len(part), int) if b < 0 else np.where(
                    part["label"] == 0, units[0][b][index], units[1][b][index])
                rows_ = np.repeat(np.arange(len(part)), counts)
                aucs.append(compute_metrics(part["label"].to_numpy()[rows_], part["score"].to_numpy()[rows_],
                                            ["auc"])["auc"])
            values.append(np.mean(aucs))
        rows.setdefault(path.parent.name, []).append(values)
    return {k: np.mean(v, axis=0) for k, v in rows.items()}


def test_an_independent_recomputation_reproduces_intervals_p_values_and_rank_intervals(tmp_path):
    lb = tmp_path / "lb"
    definition = TINY.model_dump(mode="json")
    for d, (name, separation) in enumerate({"a": 1.4, "b": 1.2, "c": 1.0, "d": 0.3}.items()):
        for seed in (0, 1):
            frame = predictions(separation, seed, noise_seed=100 * d + seed)
            result = make_result(name, seed, frame=frame)
            result["protocol"]["definition"] = definition
            commit(lb, result, frame)
    resamples = 60
    (tb,) = tables(load_dir(lb), resamples=resamples)["tiny"]
    mine = _independent_primary(lb, resamples)
    entries = {e["detector"]: e for e in tb.data["entries"]}
    for name, values in mine.items():
        assert np.allclose(tb.replicates[row_id(entries[name])], values, rtol=0, atol=1e-12), name
        lo, hi = np.quantile(values[1:], [0.025, 0.975])
        assert (entries[name]["primary"]["lo"], entries[name]["primary"]["hi"]) == (round(lo, 4), round(hi, 4))
    order = sorted(mine, key=lambda k: -entries[k]["primary"]["mean"])
    p = {}
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            diff = entries[a]["primary"]["mean"] - entries[b]["primary"]["mean"]
            se = np.std(mine[a][1:] - mine[b][1:], ddof=1)
            p[a, b] = p[b, a] = math.erfc(abs(diff) / se / math.sqrt(2))
    lower, upper = {}, {}
    for k in order:
        others = [o for o in order if o != k]
        rejected = {others[i] for i in holm_rejects([p[k, o] for o in others], 0.05)}
        lower[k] = 1 + sum(o in rejected for o in order[:order.index(k)])
        upper[k] = len(order) - sum(o in rejected for o in order[order.index(k) + 1:])
    for i, k in enumerate(order):
        want = [min(lower[m] for m in order[i:]), max(upper[m] for m in order[:i + 1])]
        assert entries[k]["rank_interval"] == want and entries[k]["could_be_first"] == (want[0] == 1), k
    top = order[0]
    for k in order[1:]:
        others = [o for o in order if o != k]
        adjusted = holm([p[k, o] for o in others])[0]
        assert entries[k]["p_vs_top_holm"] == pytest.approx(adjusted[others.index(top)], rel=1e-2)
    assert {e["n"]["unseen"]["n_real"] for e in entries.values()} == {40}  # 40 shared reals, not 80
    assert {e["n"]["unseen"]["n_fake"] for e in entries.values()} == {80}
    assert json.dumps(tb.data)  # everything in the table is plain JSON


def test_seeds_with_identical_predictions_are_flagged_deterministic(tmp_path):
    lb = tmp_path / "lb"
    frame = predictions(1.0, 0)
    for seed in (0, 1, 2):
        commit(lb, make_result("frozen", seed, frame=frame), frame)
        other = predictions(1.0, seed, noise_seed=seed + 10)
        commit(lb, make_result("trained", seed, frame=other), other)
    (tb,) = tables(load_dir(lb), resamples=50)["tiny"]
    rows = {e["detector"]: e for e in tb.data["entries"]}
    assert rows["frozen"]["deterministic"] is True and rows["trained"]["deterministic"] is False
    assert rows["frozen"]["primary"]["seed_min"] == rows["frozen"]["primary"]["seed_max"]
    assert rows["trained"]["primary"]["seed_min"] < rows["trained"]["primary"]["seed_max"]


def test_a_row_excluded_by_its_own_test_is_marked_when_a_row_below_it_could_be_first():
    """The widening that makes marks monotone: b is significantly below a, c (noisier, lower) is not."""
    rng = np.random.default_rng(4)
    base = rng.normal(0, 0.01, 10_000)
    reps = {"a": 0.80 + base, "b": 0.76 + base + rng.normal(0, 0.004, 10_000),
            "c": 0.74 + rng.normal(0, 0.08, 10_000)}
    out = rank(reps, {"a": 0.80, "b": 0.76, "c": 0.74}, higher=True)
    assert out.verdicts["b", "a"].significant and not out.verdicts["c", "a"].significant
    assert out.could_be_first == {"a": True, "b": True, "c": True}
    assert out.interval["b"][0] == 1  # widened from 2: c, ranked below, could still be first
