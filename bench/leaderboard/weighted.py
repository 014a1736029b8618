"""Metrics of one test set under integer resampling weights, vectorised over the resamples.

A bootstrap resample is a vector of integer counts over the units (images, or videos) of the test
set; a metric under those counts is the metric of the resampled test set. The metrics here equal
:mod:`bench.metrics` on the expanded data (a test checks each one), computed from the weighted
counts of fakes (tp) and reals (fp) at or above each distinct score: integer arithmetic up to the
final ratios, so the numbers do not depend on the CPU's floating-point kernels at the digits shown.

Arrays are unit-major (``[units, resamples]``): gathering images is copying rows, and a running
sum over images adds whole rows, which is several times faster than along the short axis.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bench.operating import ECE_BINS, FPR_PERCENT

_LOOP_ROWS = 4096  # up to this many images, a running sum adds row by row (numpy's cumsum is slower here)
_PAIR_CELLS = 4_000_000  # up to this many (fake, real) pairs, AUC is one matrix product per test set


def weighted_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, names: Iterable[str],
                     videos: np.ndarray | None = None, threshold: float = 0.0,
                     columns: np.ndarray | None = None, val_threshold: float | None = None) -> dict[str, np.ndarray]:
    """Metrics of one test set under each row of ``weights`` (``[B, units]`` integer counts).

    ``names`` are metric names of :data:`bench.metrics.METRIC_NAMES` (``acc`` adds ``real_acc`` and
    ``fake_acc``; ``acc_val_thr`` needs ``val_threshold`` and is skipped without it). Image i's
    weight is ``weights[:, columns[i]]`` (default: one unit per image). ``videos`` (video index per
    image) is needed for ``video_auc``: a video's weight is its frames' (equal) weight and its score
    the mean of its frames' scores. Returns ``{name: [B] float64}``.
    """
    return unit_major_metrics(scores, labels, np.ascontiguousarray(np.asarray(weights, dtype=np.int32).T), names,
                              videos, threshold, columns, val_threshold)


def unit_major_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, names: Iterable[str],
                       videos: np.ndarray | None = None, threshold: float = 0.0,
                       columns: np.ndarray | None = None, val_threshold: float | None = None) -> dict[str, np.ndarray]:
    """:func:`weighted_metrics` with ``weights`` given unit-major, ``[units, B]`` int32 (no transpose)."""
    names = [n for n in names if n != "acc_val_thr" or val_threshold is not None]
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    units = np.arange(weights.shape[0]) if columns is None else np.asarray(columns)
    wanted = set(names) - {"video_auc", "ece"}
    out: dict[str, np.ndarray] = {}
    if "auc" in wanted and np.count_nonzero(labels) * np.count_nonzero(~labels) <= _PAIR_CELLS:
        out["auc"] = _auc_by_pairs(scores, labels, weights, units)
        wanted.discard("auc")
    if wanted:
        out.update(_cumulative(scores, labels, weights, units, wanted, threshold, val_threshold))
    if "ece" in names:
        out["ece"] = _ece(scores, labels, weights, units)
    if "video_auc" in names:
        if videos is None:
            raise ValueError("video_auc needs the video index of every image")
        _, first, inverse = np.unique(videos, return_index=True, return_inverse=True)
        mean = np.bincount(inverse, weights=scores) / np.bincount(inverse)
        out["video_auc"] = _cumulative(mean, labels[first], weights, units[first], {"auc"}, threshold, None)["auc"]
    return {k: out[k] for k in [*names, "real_acc", "fake_acc"] if k in out}


def _running_sum(a: np.ndarray) -> np.ndarray:
    """Cumulative sum over rows (axis 0) in int32."""
    if len(a) > _LOOP_ROWS:
        return np.cumsum(a, axis=0, dtype=np.int32)
    out = np.empty_like(a)
    out[0] = a[0]
    for i in range(1, len(a)):
        np.add(out[i - 1], a[i], out=out[i])
    return out


def _cumulative(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, units: np.ndarray,
                names: set[str], threshold: float, val_threshold: float | None) -> dict[str, np.ndarray]:
    """Every rank metric from the cumulative weighted counts at each distinct score (high to low)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    g = weights[units[order]]
    f = g * y.astype(np.int32)[:, None]
    tp, seen = _running_sum(f), _running_sum(g)  # fakes, and images, at or above each score
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    tied = len(starts) < len(s)
    if tied:  # tied scores form one ROC point: counts at the end of each block of equal scores
        ends = np.r_[starts[1:] - 1, len(s) - 1]
        tp, seen = tp[ends], seen[ends]
        f = np.diff(tp, axis=0, prepend=0)
    fp = seen - tp
    pos, neg = tp[-1].astype(np.int64), fp[-1].astype(np.int64)
    fakes = np.flatnonzero(y[starts]) if not tied else np.arange(len(starts))  # rows that can hold fakes
    out: dict[str, np.ndarray] = {}
    if "auc" in names:  # fakes beat the reals strictly below them, and half of the tied ones
        wins = 2 * (pos * neg - (f[fakes] * fp[fakes]).sum(axis=0, dtype=np.int64))
        if tied:
            wins += (f * np.diff(fp, axis=0, prepend=0)).sum(axis=0, dtype=np.int64)
        out["auc"] = wins / (2.0 * pos * neg)
    if "ap" in names:  # sum over thresholds of (recall step) x precision, as scikit-learn defines AP
        inverse = np.r_[0.0, 1.0 / np.arange(1, int(seen[-1].max()) + 1, dtype=np.float64)]
        out["ap"] = (f[fakes] * (tp[fakes] * inverse[seen[fakes]])).sum(axis=0) / pos
    if "eer" in names:
        out["eer"] = _eer(tp, fp, pos, neg)
    distinct = s[starts]
    for name, t in (("acc", threshold), ("acc_val_thr", val_threshold)):
        if name in names:  # "fake" means score > t: a prefix of the distinct scores, high to low
            k = int(np.count_nonzero(distinct > t))
            hit_fake = tp[k - 1].astype(np.int64) if k else np.zeros_like(pos)
            hit_real = neg - (fp[k - 1] if k else 0)
            out[name] = (hit_fake + hit_real) / (pos + neg)
            if name == "acc":
                out.update(real_acc=hit_real / neg, fake_acc=hit_fake / pos)
    if "oracle_acc" in names:  # best accuracy of "score >= t", including "all real"
        out["oracle_acc"] = (np.maximum((tp - fp).max(axis=0), 0) + neg) / (pos + neg)
    columns = np.arange(tp.shape[1])
    wanted = {k: v for k, v in FPR_PERCENT.items() if k in names}
    scaled = 100 * fp if wanted else None  # int32 holds it: fp never exceeds the number of images
    for name, percent in wanted.items():  # the ROC's upper step at FPR = percent / 100, counted in integers
        inside = np.count_nonzero(scaled <= (percent * neg).astype(np.int32), axis=0)
        out[name] = np.where(inside > 0, tp[np.maximum(inside - 1, 0), columns], 0) / pos
    return out


def _auc_by_pairs(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, units: np.ndarray) -> np.ndarray:
    """AUC as ``w_fake · M · w_real / (pos · neg)``, M counting the (fake, real) pairs a fake wins (ties: half).

    One matrix product per test set. Every sum is a multiple of 1/2 no larger than pos · neg, about
    the number of (fake, real) image pairs, which float32 holds exactly below 2^23 (the pair limit
    :data:`_PAIR_CELLS` stays below that).
    """
    fake, real = np.flatnonzero(labels), np.flatnonzero(~labels)
    s_fake, s_real = scores[fake][:, None], scores[real][None, :]
    wins = (s_fake > s_real).astype(np.float32) + np.float32(0.5) * (s_fake == s_real)
    by_fake, at_fake = np.unique(units[fake], return_inverse=True)
    by_real, at_real = np.unique(units[real], return_inverse=True)
    if len(by_fake) < len(fake) or len(by_real) < len(real):  # several images per unit (frames of a video)
        merged = np.zeros((len(by_fake), len(real)), dtype=np.float32)
        np.add.at(merged, at_fake, wins)
        wins = np.zeros((len(by_fake), len(by_real)), dtype=np.float32)
        np.add.at(wins.T, at_real, merged.T)
    w_fake, w_real = weights[by_fake], weights[by_real]
    beaten = wins @ w_real.astype(np.float32)  # [fake units, B]: weighted reals each fake unit beats
    total = np.einsum("ij,ij->j", w_fake.astype(np.float32), beaten).astype(np.float64)
    pos = np.bincount(at_fake, minlength=len(by_fake)) @ w_fake
    neg = np.bincount(at_real, minlength=len(by_real)) @ w_real
    return total / (pos.astype(np.float64) * neg)


def _eer(tp: np.ndarray, fp: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Where FNR = FPR on the ROC polyline from (0, 0), interpolated as :func:`bench.metrics.equal_error_rate`."""
    cols = np.arange(tp.shape[1])
    # First ROC point with FNR <= FPR, i.e. tp·neg + fp·pos >= pos·neg (exact integers; never decreasing).
    lo, hi = np.zeros(len(cols), dtype=np.int64), np.full(len(cols), len(tp) - 1)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        reached = tp[mid, cols].astype(np.int64) * neg + fp[mid, cols].astype(np.int64) * pos >= pos * neg
        hi, lo = np.where(reached, mid, hi), np.where(reached, lo, mid + 1)
    i = lo
    f1 = fp[i, cols] / neg
    d1 = (1.0 - tp[i, cols] / pos) - f1
    start = i == 0  # the crossing segment starts at (0, 0), where FNR - FPR = 1
    f0 = np.where(start, 0.0, fp[i - 1, cols] / neg)
    d0 = np.where(start, 1.0, (1.0 - tp[i - 1, cols] / pos) - f0)
    step = np.divide(d0, d0 - d1, out=np.zeros_like(d0), where=d1 < 0)
    return np.where(d1 < 0, f0 + step * (f1 - f0), f1)


def _ece(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Expected calibration error of sigmoid(score) under the weights (:func:`bench.metrics.expected_calibration_error`)."""
    from scipy.special import expit

    p = expit(scores)
    which = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    per_unit = np.zeros((ECE_BINS + 1, weights.shape[0]))
    np.add.at(per_unit, (which, units), labels - p)  # (label - P(fake)) per bin and unit
    np.add.at(per_unit, (np.full(len(units), ECE_BINS), units), 1.0)  # and the images per unit
    # Many resamples: float32 holds the integer counts exactly and the per-bin sums of (label - P) to ~1e-7.
    kind = np.float32 if weights.shape[1] > 64 else np.float64
    sums = per_unit.astype(kind) @ weights.astype(kind)
    return np.abs(sums[:ECE_BINS].astype(np.float64)).sum(axis=0) / sums[ECE_BINS]
