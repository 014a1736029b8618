"""Tests of bench.metrics: scikit-learn agreement, hand-computed cases and the anchors' bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from bench.errors import ConfigError, DataError
from bench.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    check_two_classes,
    compute_metrics,
    group_means,
)

ALL = ["auc", "ap", "eer", "acc", "oracle_acc"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y  # logits, mildly separable
    m = compute_metrics(y, s, ALL)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["acc"] == pytest.approx(accuracy_score(y, s > 0), abs=1e-12)
    assert m["real_acc"] == pytest.approx(np.mean(s[y == 0] <= 0))
    assert m["fake_acc"] == pytest.approx(np.mean(s[y == 1] > 0))
    # EER lies between FPR and FNR of the two ROC points around the crossing
    fpr, tpr, _ = roc_curve(y, s)
    i = int(np.argmin(np.abs(1 - tpr - fpr)))
    assert abs(m["eer"] - fpr[i]) < 0.02
    # the oracle is at least as good as any fixed threshold, and it is a brute-force maximum
    brute = max(np.mean((s >= t) == y) for t in np.append(s, np.inf))
    assert m["oracle_acc"] == pytest.approx(brute) and m["oracle_acc"] >= m["acc"]
    assert m["n_real"] + m["n_fake"] == 500 and m["n_fake"] == int(y.sum())


def test_types_and_order():
    m = compute_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.7], ["eer", "acc", "auc"], threshold=0.5)
    assert list(m) == ["eer", "acc", "real_acc", "fake_acc", "auc", "n_real", "n_fake"]
    assert all(type(v) is float for k, v in m.items() if not k.startswith("n_"))
    assert type(m["n_real"]) is int and type(m["n_fake"]) is int


def test_hand_computed_auc_ap():
    # sorted by score: 0.8 fake, 0.4 real, 0.35 fake, 0.1 real
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], ["auc", "ap"])
    assert m["auc"] == pytest.approx(3 / 4)  # 3 of the 4 (fake, real) pairs are ordered right
    assert m["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # precision 1 at recall .5, 2/3 at 1


def test_eer_perfect_separation_and_inversion():
    y = [0, 0, 0, 1, 1]
    assert compute_metrics(y, [0.1, 0.2, 0.3, 0.8, 0.9], ["eer"])["eer"] == 0.0
    assert compute_metrics(y, [0.8, 0.9, 0.7, 0.1, 0.2], ["eer"])["eer"] == 1.0


def test_eer_interpolates_inside_a_segment():
    # reals {0.1, 0.5}, fakes {0.5, 0.9}: ROC (0,0) (0,.5) (.5,1) (1,1); on the diagonal segment
    # from (0,.5) to (.5,1), FNR = FPR at FPR = .25. The nearest-point rule would give 0 or .5.
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], ["eer"])
    assert m["eer"] == pytest.approx(0.25)
    assert compute_metrics([0, 1], [0.3, 0.3], ["eer"])["eer"] == pytest.approx(0.5)


def test_eer_at_a_roc_point():
    # reals {.1,.2,.7}, fakes {.6,.8}: the crossing is on the vertical segment at FPR = 1/3
    m = compute_metrics([0, 0, 0, 1, 1], [0.1, 0.2, 0.7, 0.6, 0.8], ["eer"])
    assert m["eer"] == pytest.approx(1 / 3)


def test_acc_unsorted_labels_uses_masks():
    # DeepfakeBench slices the first n_real predictions as "real"; with interleaved labels that
    # gives 1/2 and 1/2 here instead of the true 1 and 0.
    y = [1, 0, 1, 0]
    s = [-1.0, -2.0, -3.0, -4.0]  # everything predicted real
    m = compute_metrics(y, s, ["acc"])
    assert (m["acc"], m["real_acc"], m["fake_acc"]) == (0.5, 1.0, 0.0)


def test_acc_threshold_is_strict():
    m = compute_metrics([0, 1], [0.0, 0.0], ["acc"])  # logit 0 = P 0.5 is not fake
    assert (m["real_acc"], m["fake_acc"]) == (1.0, 0.0)
    m = compute_metrics([0, 1], [0.5, 0.6], ["acc"], threshold=0.5)
    assert m["acc"] == 1.0


def test_logits_and_probabilities_agree():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    logits = rng.normal(size=200) * 3
    probs = 1 / (1 + np.exp(-logits))
    a = compute_metrics(y, logits, ALL, threshold=0.0)
    b = compute_metrics(y, probs, ALL, threshold=0.5)
    assert a == pytest.approx(b)


def test_oracle_acc_hand_computed():
    # best cut puts only 0.9 on the fake side: 3 of 4 right
    assert compute_metrics([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2], ["oracle_acc"])["oracle_acc"] == 0.75


def test_video_auc_groups_by_full_id():
    # two videos share the basename "000" in different folders; grouping by basename would merge
    # a real and a fake video into one mixed video
    groups = [
        "ffpp/real/000",
        "ffpp/real/000",
        "ffpp/fake/000",
        "ffpp/fake/000",
        "ffpp/real/001",
        "ffpp/fake/001",
    ]
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.9, 0.6, 0.6, 0.4, 0.3]
    m = compute_metrics(y, s, ["auc", "video_auc"], groups=groups)
    # video means: real/000 .5, real/001 .4, fake/000 .6, fake/001 .3 -> 2 of 4 pairs right
    assert m["video_auc"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    assert (m["n_real"], m["n_fake"]) == (3, 3)  # counts stay frame-level


def test_video_auc_matches_pandas_groupby():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(4)
    vid = rng.integers(0, 40, 400)
    y = (vid % 2).astype(int)
    s = rng.normal(size=400) + 0.5 * y
    groups = [f"set/{v}" for v in vid]
    df = pd.DataFrame({"g": groups, "y": y, "s": s}).groupby("g").mean()
    assert compute_metrics(y, s, ["video_auc"], groups=groups)["video_auc"] == pytest.approx(
        roc_auc_score(df["y"], df["s"])
    )


def test_mixed_label_video_raises_naming_it():
    with pytest.raises(DataError, match="cdf/id0_0001"):
        compute_metrics(
            [0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], ["video_auc"], groups=["cdf/id0_0001"] * 2 + ["a", "b"]
        )


def test_video_auc_without_groups_is_a_config_error():
    with pytest.raises(ConfigError, match="video id"):
        compute_metrics([0, 1], [0.1, 0.9], ["video_auc"])


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_one_class_raises(labels):
    with pytest.raises(DataError, match="both classes") as info:
        compute_metrics(labels, [0.5] * len(labels), ["auc"], where="celeb_df_v2")
    assert "celeb_df_v2" in str(info.value)
    assert f"{labels.count(0)} real and {labels.count(1)} fake" in str(info.value)


def test_check_two_classes():
    assert check_two_classes(np.array([0, 1, 1]), "val") == (1, 2)
    assert check_two_classes((x for x in [True, False]), "val") == (1, 1)
    with pytest.raises(DataError, match="val has 0 real and 3 fake"):
        check_two_classes([1, 1, 1], "val")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_raise(bad):
    with pytest.raises(DataError, match="non-finite"):
        compute_metrics([0, 1, 0], [0.1, bad, 0.3], ["auc"])


def test_bad_inputs():
    with pytest.raises(DataError, match="labels other than"):
        compute_metrics([0, 2], [0.1, 0.2], ["auc"])
    with pytest.raises(DataError, match="2 labels but 3 scores"):
        compute_metrics([0, 1], [0.1, 0.2, 0.3], ["auc"])
    with pytest.raises(ConfigError, match="Did you mean 'auc'"):
        compute_metrics([0, 1], [0.1, 0.2], ["acu"])


def test_group_means():
    per_test = {
        "a": {"auc": 0.9, "eer": 0.1, "n_real": 10, "n_fake": 20, "video_auc": 0.95},
        "b": {"auc": 0.7, "eer": 0.3, "n_real": 30, "n_fake": 40},
        "c": {"auc": 0.5, "eer": 0.5, "n_real": 1, "n_fake": 1},
    }
    g = group_means(per_test, {"all": ["a", "b", "c"], "ab": ["a", "b"]})
    # unweighted: b's larger size does not pull the mean
    assert g["all"] == pytest.approx({"auc": 0.7, "eer": 0.3, "n_real": 41, "n_fake": 61})
    assert "video_auc" not in g["ab"]
    assert type(g["all"]["n_real"]) is int and type(g["all"]["auc"]) is float
    with pytest.raises(ConfigError, match="'d'"):
        group_means(per_test, {"x": ["a", "d"]})


def test_tables_are_consistent():
    assert set(METRIC_NAMES) <= set(HIGHER_IS_BETTER)
    assert HIGHER_IS_BETTER["eer"] is False
    assert {"real_acc", "fake_acc"} <= set(HIGHER_IS_BETTER)


def test_deployment_metrics_against_their_definitions():
    from scipy.special import expit

    from bench.metrics import youden_threshold
    from bench.operating import ECE_BINS, expected_calibration_error, tpr_at_fpr

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + 1.5 * y, 2)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for percent in (1, 5):
        assert tpr_at_fpr(y, s, percent) == pytest.approx(tpr[fpr <= percent / 100 + 1e-12].max())
    p = expit(s)
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum((bins == b).mean() * abs(y[bins == b].mean() - p[bins == b].mean()) for b in set(bins))
    assert expected_calibration_error(y, s) == pytest.approx(ece, abs=1e-12)
    chosen = youden_threshold(y, s)
    balanced = [((s[y == 1] > t).mean() + (s[y == 0] <= t).mean()) / 2 for t in np.r_[s, s.min() - 1]]
    assert chosen["balanced_acc"] == pytest.approx(max(balanced))
    assert ((s[y == 1] > chosen["value"]).mean() + (s[y == 0] <= chosen["value"]).mean()) / 2 == pytest.approx(
        chosen["balanced_acc"])
    assert chosen["value"] not in set(s)  # between two scores, so no validation image sits on it
    m = compute_metrics(y, s, ["acc_val_thr", "ece", "tpr_at_fpr1"], val_threshold=chosen["value"])
    assert m["acc_val_thr"] == pytest.approx(np.mean((s > chosen["value"]) == y))
    with pytest.raises(ConfigError, match="acc_val_thr .* needs the threshold chosen on validation"):
        compute_metrics(y, s, ["acc_val_thr"])
    assert HIGHER_IS_BETTER["ece"] is False and set(METRIC_NAMES) >= {"acc_val_thr", "tpr_at_fpr5"}
