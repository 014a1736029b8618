"""The bootstrap: metrics under resampling counts equal bench.metrics on the resampled data; pools; ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from board import TINY, predictions

from bench.leaderboard.resample import bootstrap, replicates, strata
from bench.leaderboard.stats import interval, p_not_below, pool_seeds, resample_counts, weighted_metrics
from bench.metrics import compute_metrics


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    videos = np.repeat(np.arange(n // 3), 3)
    labels = np.repeat(rng.permutation([0, 1] * (n // 6)), 3)
    scores = np.round(rng.normal(size=n) + labels, 1)  # rounding makes ties, which every metric must handle
    return scores, labels, videos


def test_weighted_metrics_equal_bench_metrics_on_each_resample():
    scores, labels, _ = data()
    counts = resample_counts(len(scores), 6, "test")
    names = ["auc", "ap", "eer", "acc", "oracle_acc"]
    got = weighted_metrics(scores, labels, counts, names)
    for b in range(len(counts)):
        rows = np.repeat(np.arange(len(scores)), counts[b])
        want = compute_metrics(labels[rows], scores[rows], names)
        for key in [*names, "real_acc", "fake_acc"]:
            assert got[key][b] == pytest.approx(want[key], abs=1e-12), key


def test_unit_weights_give_the_stored_metrics_including_video_auc():
    scores, labels, videos = data()
    names = ["auc", "ap", "eer", "acc", "video_auc"]
    got = weighted_metrics(scores, labels, np.ones((1, len(scores)), dtype=int), names, videos=videos)
    want = compute_metrics(labels, scores, names, groups=videos)
    assert {k: pytest.approx(v[0], abs=1e-12) for k, v in got.items()} == {k: want[k] for k in got}


def test_counts_are_reproducible_resamples_with_replacement():
    a, b = resample_counts(50, 200, "real", "pool"), resample_counts(50, 200, "real", "pool")
    assert np.array_equal(a, b) and (a.sum(axis=1) == 50).all()
    assert not np.array_equal(a, resample_counts(50, 200, "fake", "pool"))
    assert 0.30 < (a == 0).mean() < 0.44  # about e^-1 of the units are left out of a resample


def test_bootstrap_se_of_auc_matches_the_closed_form():
    """Hanley & McNeil's standard error of an AUC against the spread of the image bootstrap."""
    rng = np.random.default_rng(3)
    n = 100
    labels = np.r_[np.zeros(n, int), np.ones(n, int)]
    scores = rng.normal(size=2 * n) + 1.2 * labels
    fake = labels == 1
    counts = np.empty((2000, 2 * n), dtype=int)
    counts[:, ~fake] = resample_counts(n, 2000, "real")
    counts[:, fake] = resample_counts(n, 2000, "fake")
    auc = weighted_metrics(scores, labels, counts, ["auc"])["auc"]
    a = compute_metrics(labels, scores, ["auc"])["auc"]
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (n * n))
    assert auc.std() == pytest.approx(se, rel=0.15)
    lo, hi = interval(auc)
    assert lo < a < hi and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)


def cross_domain_frame(tests, definition, n=60, seed=0):
    """Scores on synthetic test sets where the k-th real and the k-th fake score the same in every test set."""
    rng = np.random.default_rng(seed)
    base = {0: rng.normal(0.0, 1.0, n), 1: rng.normal(1.0, 1.0, n)}
    rows = []
    for test in tests:
        subset = definition["test"][test]["subsets"][0]
        for label in (0, 1):
            for k in range(n):
                item = f"test/{subset}/{label}/{k:06d}"
                rows.append({"test_set": test, "index": len(rows), "source": "synth", "id": item, "subset": subset,
                             "group": item, "label": label, "score": base[label][k]})
    return pd.DataFrame(rows)


def test_synthetic_units_drop_generator_and_domain_for_reals_and_fakes():
    from bench.protocol import load_protocol

    definition = load_protocol("synthetic_cross_domain").model_dump(mode="json")
    tests = ["blend_ellipse", "blend_rect", "blend_ellipse_jpeg75", "blend_ellipse_resize_half"]
    frame = cross_domain_frame(tests, definition, n=5)
    keys = {t: strata(part, t, definition) for t, part in frame.groupby("test_set")}
    first = keys["blend_ellipse"]
    for test in tests[1:]:  # the same stratum and unit per (label, index), whatever the generator and domain
        assert np.array_equal(keys[test][0], first[0]) and np.array_equal(keys[test][1], first[1]), test
    assert first[1][0] == "synth:test/0/000000" and first[1][5] == "synth:test/1/000000"
    assert len(set(first[0])) == 2  # one stratum of reals and one of fakes for the split
    apart = strata(frame[frame["test_set"] == "blend_rect"], "blend_rect", None)  # no definition: its own
    assert set(apart[0]).isdisjoint(first[0]) and apart[1][0] == "synth:test/blend_rect/0/000000"


def test_every_synthetic_test_set_of_a_split_draws_the_same_counts_per_index():
    """Identical scores per index give identical replicates only when the counts are shared."""
    from bench.protocol import load_protocol

    definition = load_protocol("synthetic_cross_domain").model_dump(mode="json")
    tests = ["blend_ellipse", "blend_rect", "blend_ellipse_jpeg75", "upsample_nearest"]
    reps, design = bootstrap({"a/x": cross_domain_frame(tests, definition)}, tests, ["acc", "auc"], definition, 200)
    for test in tests[1:]:
        for metric in ("real_acc", "fake_acc", "auc"):
            assert np.array_equal(reps["a/x"][test][metric], reps["a/x"]["blend_ellipse"][metric]), (test, metric)
    assert reps["a/x"]["blend_ellipse"]["auc"].std() > 0
    assert design.shared() == ["synthetic fakes", "synthetic reals"] and not design.videos
    alone = bootstrap({"a/x": cross_domain_frame(tests, definition)}, tests, ["auc"], None, 200)[1]
    assert alone.shared() == []


def test_paired_file_test_sets_keep_sharing_their_real_pool():
    definition = {"sources": {"files": {"type": "folder"}},
                  "test": {t: {"real": {"source": "files", "split": "test", "subsets": ["real"]},
                               "fake": {"source": "files", "split": "test", "subsets": [t]}} for t in ("a", "b")}}
    rows = []
    for test in ("a", "b"):
        for label in (0, 1):
            for k in range(30):
                item = f"{'real' if label == 0 else test}/{k}.png"
                rows.append({"test_set": test, "source": "files", "id": item, "group": item, "label": label,
                             "score": (k % 7) - 3.0 + 0.5 * label})
    frame = pd.DataFrame(rows)
    reps, design = bootstrap({"r": frame}, ["a", "b"], ["acc"], definition, 100)
    assert np.array_equal(reps["r"]["a"]["real_acc"], reps["r"]["b"]["real_acc"])
    assert not np.array_equal(reps["r"]["a"]["fake_acc"], reps["r"]["b"]["fake_acc"])  # fakes: their own
    assert design.shared() == ["paired reals"]


def test_a_shared_real_pool_widens_the_group_interval():
    """Reals drawn together move every member's AUC the same way, so their mean varies more."""
    frame = predictions(1.0, 0)
    shared = replicates({"r": frame}, list(TINY.test), ["auc"], TINY.model_dump(mode="json"), 1000)["r"]
    apart = replicates({"r": frame}, list(TINY.test), ["auc"], None, 1000)["r"]
    mean = {k: np.mean([v[t]["auc"] for t in ("blend_ellipse", "peaks_p4")], axis=0) for k, v in
            (("shared", shared), ("apart", apart))}
    assert mean["shared"].std() > 1.15 * mean["apart"].std()


def test_seed_pooling_and_the_paired_tie_test():
    rng = np.random.default_rng(0)
    per_seed = rng.normal(0.8, 0.01, size=(3, 500))
    pooled = pool_seeds(per_seed, "row")
    assert np.array_equal(pooled, pool_seeds(per_seed, "row")) and pooled.shape == (500,)
    assert per_seed.min(axis=0).min() <= pooled.min() and pooled.max() <= per_seed.max()
    assert np.array_equal(pool_seeds(per_seed[:1], "row"), per_seed[0])
    top = rng.normal(0.8, 0.02, 999)
    assert p_not_below(top, top, True) == 1.0  # the same numbers are never significantly below
    assert p_not_below(top, top - 0.1, True) == pytest.approx(1 / 1000)
    assert p_not_below(top, top + 0.1, False) == pytest.approx(1 / 1000)  # lower is better: EER
