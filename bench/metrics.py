"""Detection metrics with the conventions of ``shared/reference/anchors.md`` §4.

Labels: fake = 1, real = 0. Scores: higher means more fake; they may be logits or probabilities,
since every metric here except ``acc`` depends only on the order of the scores. ``acc`` compares
``score > threshold``: the runner passes **logits with threshold 0.0**, which is the same decision
as ``P(fake) > 0.5`` (sigmoid is monotonic and sigmoid(0) = 0.5); pass ``threshold=0.5`` for
probabilities.

This module uses numpy and scikit-learn only (never torch): the leaderboard imports it. Operating
points (TPR at a fixed FPR, calibration) live in :mod:`bench.operating`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from bench.errors import ConfigError, DataError, did_you_mean
from bench.operating import FPR_PERCENT, expected_calibration_error, roc_counts, tpr_at_fpr

#: Metric names :func:`compute_metrics` accepts (protocols list a subset of these).
METRIC_NAMES: tuple[str, ...] = ("auc", "ap", "eer", "acc", "video_auc", "oracle_acc", "acc_val_thr", "ece",
                                 "tpr_at_fpr1", "tpr_at_fpr5")

#: What every run reports beside its protocol's metrics (results schema 3): the accuracy a deployed
#: detector gets at the threshold chosen on the source validation set, beside logit 0 and the test-label
#: oracle; the calibration of its probability; and the true-positive rate in the low-false-positive regime.
DEPLOYMENT_METRICS: tuple[str, ...] = ("acc", "acc_val_thr", "oracle_acc", "ece", "tpr_at_fpr1", "tpr_at_fpr5")

#: Direction of every metric key a result can hold (``real_acc``/``fake_acc`` come with ``acc``).
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True,
    "ap": True,
    "acc": True,
    "real_acc": True,
    "fake_acc": True,
    "eer": False,
    "video_auc": True,
    "oracle_acc": True,
    "acc_val_thr": True,
    "ece": False,
    "tpr_at_fpr1": True,
    "tpr_at_fpr5": True,
}


def is_count(key: str) -> bool:
    """True for count keys (``n_real``, ``n_fake``, ...), which are summed, not averaged."""
    return key.startswith("n_")


def check_two_classes(labels: Iterable[Any], where: str) -> tuple[int, int]:
    """Raise :class:`DataError` unless ``labels`` holds both classes; return ``(n_real, n_fake)``.

    The runner calls this for every test and validation set before training starts, so a
    one-class set fails in seconds instead of producing a NaN AUC after the run.
    """
    y = _labels(labels, where)
    n_fake = int(y.sum())
    n_real = int(y.size - n_fake)
    if n_real == 0 or n_fake == 0:
        raise DataError(
            f"{where} has {n_real} real and {n_fake} fake images, but its metrics need both classes; "
            f"add the missing class to {where} (check its paths and labels) or remove it from the protocol."
        )
    return n_real, n_fake


def compute_metrics(
    labels: Sequence[Any],
    scores: Sequence[float],
    names: Iterable[str],
    groups: Sequence[Any] | None = None,
    threshold: float = 0.0,
    *,
    where: str = "the test set",
    val_threshold: float | None = None,
) -> dict[str, float | int]:
    """Compute the requested metrics of one test set.

    Args:
        labels: 0 (real) or 1 (fake) per image.
        scores: one score per image, higher = more fake (logits or probabilities).
        names: metrics to compute, a subset of :data:`METRIC_NAMES`.
        groups: video id per image (dataset + full relative video path, never a basename);
            required for ``video_auc``.
        threshold: decision threshold of ``acc``; 0.0 for logits, 0.5 for probabilities.
        where: the test set's name, used in error messages.
        val_threshold: the logit threshold chosen on the source validation set
            (:func:`youden_threshold`), needed for ``acc_val_thr``.

    ``ece`` and ``tpr_at_fpr*`` read ``scores`` as logits (see :func:`expected_calibration_error`,
    :func:`tpr_at_fpr`).

    Returns:
        ``{name: value}`` in the requested order (``acc`` is followed by ``real_acc`` and
        ``fake_acc``; ``video_auc`` by ``n_videos``, the number of videos it ranked), then
        ``n_real`` and ``n_fake``. Values are python floats, counts ints.

    Raises:
        DataError: one-class input, labels other than 0/1, non-finite scores, length mismatch,
            or a video whose frames have different labels.
        ConfigError: an unknown metric name, ``video_auc`` without ``groups``, or ``acc_val_thr``
            without ``val_threshold``.
    """
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in METRIC_NAMES:
            raise ConfigError(
                f"unknown metric {name!r}; choose among {', '.join(METRIC_NAMES)}.{did_you_mean(name, METRIC_NAMES)}"
            )
    y = _labels(labels, where)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size != y.size:
        raise DataError(f"{where} has {y.size} labels but {s.size} scores; pass one score per image.")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise DataError(
            f"{where} has {bad.size} non-finite scores (first at index {int(bad[0])}: {s[bad[0]]}); "
            "the detector produced NaN or inf, so check its outputs and training loss."
        )
    n_real, n_fake = check_two_classes(y, where)

    out: dict[str, float | int] = {}
    for name in names:
        if name == "auc":
            out["auc"] = float(roc_auc_score(y, s))
        elif name == "ap":
            out["ap"] = float(average_precision_score(y, s))
        elif name == "eer":
            out["eer"] = equal_error_rate(y, s)
        elif name == "acc":
            out.update(accuracy(y, s, threshold))
        elif name == "oracle_acc":
            out["oracle_acc"] = oracle_accuracy(y, s)
        elif name == "acc_val_thr":
            if val_threshold is None:
                raise ConfigError(f"acc_val_thr on {where} needs the threshold chosen on validation; pass "
                                  "val_threshold= (see youden_threshold) or drop acc_val_thr.")
            out["acc_val_thr"] = accuracy(y, s, val_threshold)["acc"]
        elif name == "ece":
            out["ece"] = expected_calibration_error(y, s)
        elif name in FPR_PERCENT:
            out[name] = tpr_at_fpr(y, s, FPR_PERCENT[name])
        elif name == "video_auc":
            if groups is None:
                raise ConfigError(
                    f"video_auc on {where} needs a video id per image; pass groups= or drop video_auc."
                )
            video_labels, video_scores = video_level(y, s, groups, where)
            check_two_classes(video_labels, f"{where} (video level)")
            out["video_auc"] = float(roc_auc_score(video_labels, video_scores))
            out["n_videos"] = len(video_labels)
    out["n_real"] = n_real
    out["n_fake"] = n_fake
    return out


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.0) -> dict[str, float]:
    """Return ``acc``, ``real_acc`` (TNR) and ``fake_acc`` (TPR) of ``score > threshold``.

    Real and fake accuracy use boolean masks, so label order does not matter (DeepfakeBench
    slices the first n_real predictions, which is only right for sorted labels).
    """
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) > threshold
    return {
        "acc": float(np.mean(pred == y)),
        "real_acc": float(np.mean(~pred[~y])),
        "fake_acc": float(np.mean(pred[y])),
    }


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the rate where FNR = FPR, linearly interpolated between ROC points.

    Along the ROC curve ``d = FNR - FPR`` strictly decreases from 1 to -1, so it crosses zero
    once; interpolating inside the crossing segment is stable where DeepfakeBench's nearest-point
    rule jumps between the two neighbouring points.
    """
    fpr, tpr, _ = roc_curve(labels, scores)
    d = (1.0 - tpr) - fpr
    i = int(np.argmax(d <= 0))  # first point at or past the crossing; d[-1] = -1 guarantees one
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def oracle_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the best accuracy of ``score >= t`` over every threshold t (including "all real").

    This uses the test labels to pick the threshold, so it is always reported as ``oracle_acc``,
    never as ``acc``.
    """
    y = np.asarray(labels)
    n_fake = int(y.sum())
    n_real = y.size - n_fake
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    correct = tpr * n_fake + (1.0 - fpr) * n_real
    return float(np.max(correct) / y.size)


def youden_threshold(labels: Sequence[Any], scores: Sequence[float], where: str = "validation") -> dict[str, float]:
    """The logit threshold that maximises balanced accuracy (Youden's J) of ``score > t`` on validation.

    Candidates separate consecutive distinct scores: ``t`` is the midpoint between the lowest score
    called fake and the next lower score (1 below the lowest score when every image is called fake,
    1 above the highest when none is). Among equal balanced accuracies the highest threshold wins.
    Returns ``{"value": t, "balanced_acc": its balanced accuracy on these scores}``.
    """
    y = _labels(labels, where)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    check_two_classes(y, where)
    tp, fp = roc_counts(y, s)
    balanced = (tp / tp[-1] + 1.0 - fp / fp[-1]) / 2.0
    k = int(np.argmax(balanced))  # k distinct scores, from the top, are called fake
    distinct = np.unique(s)[::-1]
    if k == 0:
        value = float(distinct[0] + 1.0)
    elif k == len(distinct):
        value = float(distinct[-1] - 1.0)
    else:
        value = float((distinct[k - 1] + distinct[k]) / 2.0)
    return {"value": value, "balanced_acc": float(balanced[k])}


def video_level(
    labels: np.ndarray, scores: np.ndarray, groups: Sequence[Any], where: str = "the test set"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels, mean scores)`` per video, videos sorted by id.

    ``groups`` are full video ids; two videos that share a folder basename stay separate as long
    as their ids differ. A video with both real and fake frames is a :class:`DataError`.
    """
    g = np.asarray(groups).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if g.size != y.size:
        raise DataError(f"{where} has {y.size} labels but {g.size} video ids; pass one video id per image.")
    ids, inverse = np.unique(g, return_inverse=True)
    counts = np.bincount(inverse)
    fakes = np.bincount(inverse, weights=y.astype(np.float64))
    mixed = np.flatnonzero((fakes > 0) & (fakes < counts))
    if mixed.size:
        shown = ", ".join(repr(str(v)) for v in ids[mixed[:3]])
        raise DataError(
            f"{where} has {mixed.size} video(s) with both real and fake frames ({shown}); "
            "every frame of a video must carry the video's label, so fix the labels or the video ids."
        )
    mean_scores = np.bincount(inverse, weights=np.asarray(scores, dtype=np.float64)) / counts
    return (fakes > 0).astype(np.int64), mean_scores


def group_means(
    per_test: Mapping[str, Mapping[str, float | int]], groups: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, float | int]]:
    """Aggregate per-test metrics into group columns.

    Every metric is the unweighted mean over the group's member test sets (the anchors' "mAP",
    "mean acc", "Avg"); counts (``n_*`` keys) are summed. Only metrics every member has are kept.
    """
    out: dict[str, dict[str, float | int]] = {}
    for group, members in groups.items():
        if not members:
            raise ConfigError(f"group {group!r} has no test sets; list at least one or remove the group.")
        missing = [m for m in members if m not in per_test]
        if missing:
            raise ConfigError(
                f"group {group!r} names test set {missing[0]!r}, which has no metrics; "
                f"use one of {', '.join(sorted(per_test))}.{did_you_mean(missing[0], per_test)}"
            )
        rows = [per_test[m] for m in members]
        keys = [k for k in rows[0] if all(k in r for r in rows[1:])]
        out[group] = {
            k: int(sum(int(r[k]) for r in rows))
            if is_count(k)
            else float(np.mean([float(r[k]) for r in rows]))
            for k in keys
        }
    return out


def _labels(labels: Iterable[Any], where: str) -> np.ndarray:
    """Return labels as an int64 vector, or raise DataError for values other than 0 and 1."""
    if not hasattr(labels, "__array__") and not isinstance(labels, (list, tuple)):
        labels = list(labels)  # a generator would otherwise become a 0-d object array
    y = np.asarray(labels).reshape(-1)
    if y.dtype == bool:
        return y.astype(np.int64)
    if y.size and not np.isin(y, (0, 1)).all():
        odd = sorted({str(v) for v in y[~np.isin(y, (0, 1))][:5]})
        raise DataError(
            f"{where} has labels other than 0 (real) and 1 (fake), e.g. {', '.join(odd)}; "
            "relabel it so fake = 1 and real = 0."
        )
    return y.astype(np.int64)
