"""The bootstrap: metrics under resampling counts equal bench.metrics on the resampled data; pools; counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from board import TINY, predictions

from bench.leaderboard.resample import Resampler, strata
from bench.leaderboard.stats import interval, resample_counts
from bench.leaderboard.weighted import weighted_metrics
from bench.metrics import compute_metrics

NAMES = ["auc", "ap", "eer", "acc", "oracle_acc", "acc_val_thr", "ece", "tpr_at_fpr1", "tpr_at_fpr5"]


def data(n=60, seed=0, digits=1):
    rng = np.random.default_rng(seed)
    videos = np.repeat(np.arange(n // 3), 3)
    labels = np.repeat(rng.permutation([0, 1] * (n // 6)), 3)
    scores = np.round(rng.normal(size=n) + labels, digits)  # rounding makes ties, which every metric must handle
    return scores, labels, videos


@pytest.mark.parametrize("digits", [1, 4])
def test_weighted_metrics_equal_bench_metrics_on_each_resample(digits):
    scores, labels, _ = data(digits=digits)
    counts = resample_counts(len(scores), 12, "test")
    got = weighted_metrics(scores, labels, counts, NAMES, val_threshold=0.35)
    for b in range(len(counts)):
        rows = np.repeat(np.arange(len(scores)), counts[b])
        want = compute_metrics(labels[rows], scores[rows], NAMES, val_threshold=0.35)
        for key in [*NAMES, "real_acc", "fake_acc"]:
            tolerance = 1e-7 if key == "ece" else 1e-12  # ece sums in float32 (exact counts, ~1e-7 sums)
            assert got[key][b] == pytest.approx(want[key], abs=tolerance), key


def test_auc_by_pairs_equals_the_cumulative_counts_with_shared_units():
    from bench.leaderboard.weighted import _auc_by_pairs, _cumulative

    scores, labels, videos = data(digits=1)
    weights = np.ascontiguousarray(resample_counts(videos.max() + 1, 50, "v").T)
    labels = labels.astype(bool)
    pairs = _auc_by_pairs(scores, labels, weights, videos)
    assert np.array_equal(pairs, _cumulative(scores, labels, weights, videos, {"auc"}, 0.0, None)["auc"])


def test_unit_weights_give_the_stored_metrics_including_video_auc():
    scores, labels, videos = data()
    names = ["auc", "ap", "eer", "acc", "video_auc", "ece", "tpr_at_fpr5"]
    got = weighted_metrics(scores, labels, np.ones((1, len(scores)), dtype=int), names, videos=videos)
    want = compute_metrics(labels, scores, names, groups=videos)
    assert {k: pytest.approx(v[0], abs=1e-7) for k, v in got.items()} == {k: want[k] for k in got}


def test_counts_are_reproducible_resamples_with_replacement_drawn_in_blocks():
    a, b = resample_counts(50, 2200, "real", "pool"), resample_counts(50, 2200, "real", "pool")
    assert np.array_equal(a, b) and (a.sum(axis=1) == 50).all()
    assert np.array_equal(a[:2000], resample_counts(50, 2000, "real", "pool"))  # more resamples extend, never redraw
    assert not np.array_equal(a, resample_counts(50, 2200, "fake", "pool"))
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
    sampler = Resampler({"a/x": cross_domain_frame(tests, definition)}, tests, definition, 200)
    reps = {t: sampler.metrics("a/x", t, ["acc", "auc"]) for t in tests}
    for test in tests[1:]:
        for metric in ("real_acc", "fake_acc", "auc"):
            assert np.array_equal(reps[test][metric], reps["blend_ellipse"][metric]), (test, metric)
    assert reps["blend_ellipse"]["auc"][1:].std() > 0 and len(reps["blend_ellipse"]["auc"]) == 201
    assert sampler.design.shared() == ["synthetic fakes", "synthetic reals"] and not sampler.design.videos
    assert sampler.design.unit_counts(tests) == {"real": 60, "fake": 60}
    alone = Resampler({"a/x": cross_domain_frame(tests, definition)}, tests, None, 200).design
    assert alone.shared() == [] and alone.unit_counts(tests) == {"real": 240, "fake": 240}


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
    sampler = Resampler({"r": pd.DataFrame(rows)}, ["a", "b"], definition, 100)
    a, b = sampler.metrics("r", "a", ["acc"]), sampler.metrics("r", "b", ["acc"])
    assert np.array_equal(a["real_acc"], b["real_acc"])
    assert not np.array_equal(a["fake_acc"], b["fake_acc"])  # fakes: their own
    assert sampler.design.shared() == ["split reals"]


def test_degraded_variants_of_one_split_draw_the_same_images():
    """Identical scores under two perturb variants of one split give identical replicates (correlation 1)."""
    split = {"source": "files", "split": "test", "subsets": ["sd"]}
    definition = {"sources": {"files": {"type": "folder"}},
                  "test": {"clean": split, "jpeg": {**split, "perturb": {"jpeg": 65}},
                           "blur": {**split, "fake_perturb": {"blur": 3.0}},
                           "paired": {"real": {**split, "perturb": {"jpeg": 30}}, "fake": split,
                                      "perturb": {"jpeg": 30}},
                           "other": {**split, "subsets": ["mj"]}}}
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 40)) + np.array([[0.0], [1.0]])
    rows = [{"test_set": test, "source": "files", "id": f"{sub}/{label}/{k}.png", "group": f"{sub}/{label}/{k}.png",
             "label": label, "score": scores[label, k]}
            for test, sub in (("clean", "sd"), ("jpeg", "sd"), ("blur", "sd"), ("paired", "sd"), ("other", "mj"))
            for label in (0, 1) for k in range(40)]
    tests = list(definition["test"])
    sampler = Resampler({"r": pd.DataFrame(rows)}, tests, definition, 200)
    reps = {t: sampler.metrics("r", t, ["acc", "auc"]) for t in tests}
    for test in ("jpeg", "blur", "paired"):
        for metric in ("real_acc", "fake_acc", "auc"):
            assert np.array_equal(reps[test][metric], reps["clean"][metric]), (test, metric)
    assert np.corrcoef(reps["clean"]["auc"][1:], reps["other"]["auc"][1:])[0, 1] < 0.9  # another subset: apart
    assert sampler.design.shared() == ["split fakes", "split reals"]
    assert sampler.design.unit_counts(tests) == {"real": 80, "fake": 80}


def test_a_shared_real_pool_widens_the_group_interval():
    """Reals drawn together move every member's AUC the same way, so their mean varies more."""
    frame = predictions(1.0, 0)
    spreads = {}
    for name, definition in (("shared", TINY.model_dump(mode="json")), ("apart", None)):
        sampler = Resampler({"r": frame}, list(TINY.test), definition, 1000)
        mean = np.mean([sampler.metrics("r", t, ["auc"])["auc"][1:] for t in ("blend_ellipse", "peaks_p4")], axis=0)
        spreads[name] = mean.std()
    assert spreads["shared"] > 1.15 * spreads["apart"]
