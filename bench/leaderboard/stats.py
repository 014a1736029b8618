"""Bootstrap statistics: resampling counts, metrics under integer weights, intervals and the tie test.

A bootstrap resample is a vector of integer counts over the units (images, or videos for frame
datasets) of a stratum; a metric under those counts is the metric of the resampled test set. The
metrics here equal :mod:`bench.metrics` on the expanded data (a test checks it), vectorised over
resamples. Counts come from ``Generator.integers`` (integer arithmetic only) and the sums of counts
stay integers, so the numbers do not depend on the CPU's floating-point kernels at the digits shown.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np

#: Resamples per interval, the generator's fixed seed, the interval level and the tie test's level.
RESAMPLES = 1000
SEED = 20260101
LEVEL = 0.95
ALPHA = 0.05


def generator(*parts: str | int) -> np.random.Generator:
    """A PCG64 generator seeded by :data:`SEED` and a stable hash of ``parts`` (same on every machine)."""
    return np.random.default_rng([SEED, *(zlib.crc32(str(p).encode()) for p in parts)])


def resample_counts(n_units: int, resamples: int, *key: str | int) -> np.ndarray:
    """``[resamples, n_units]`` counts of drawing ``n_units`` units with replacement, ``resamples`` times."""
    draws = generator("units", *key).integers(0, n_units, size=(resamples, n_units))
    offsets = (np.arange(resamples) * n_units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_units).reshape(resamples, n_units)


def weighted_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, names: Iterable[str],
                     videos: np.ndarray | None = None, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Metrics of one test set under each row of ``weights`` (``[B, n]`` integer counts per image).

    ``names`` are metric names of :data:`bench.metrics.METRIC_NAMES` (``acc`` adds ``real_acc`` and
    ``fake_acc``). ``videos`` (video index per image) is needed for ``video_auc``: a video's weight
    is its frames' (equal) weight and its score the mean of its frames' scores.
    Returns ``{name: [B] float64}``.
    """
    names = list(names)
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    weights = np.asarray(weights, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    ranked = {"auc", "ap", "eer", "oracle_acc"} & set(names)
    if ranked:
        out.update(_ranked(scores, labels, weights, ranked))
    if "acc" in names:
        fake = weights[:, labels].sum(axis=1)
        real = weights[:, ~labels].sum(axis=1)
        hit_fake = weights[:, labels & (scores > threshold)].sum(axis=1)
        hit_real = weights[:, ~labels & ~(scores > threshold)].sum(axis=1)
        out["acc"] = (hit_fake + hit_real) / (fake + real)
        out["real_acc"] = hit_real / real
        out["fake_acc"] = hit_fake / fake
    if "video_auc" in names:
        if videos is None:
            raise ValueError("video_auc needs the video index of every image")
        _, first, inverse = np.unique(videos, return_index=True, return_inverse=True)
        mean = np.bincount(inverse, weights=scores) / np.bincount(inverse)
        out["video_auc"] = _ranked(mean, labels[first], weights[:, first], {"auc"})["auc"]
    return {k: out[k] for k in [*names, "real_acc", "fake_acc"] if k in out}


def _ranked(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, names: set[str]) -> dict[str, np.ndarray]:
    """AUC, AP, EER and oracle accuracy from weighted cumulative counts over distinct scores, high to low."""
    order = np.argsort(-scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    fake = np.add.reduceat(np.where(y, w, 0), starts, axis=1)  # [B, G] weight per distinct score
    real = np.add.reduceat(np.where(y, 0, w), starts, axis=1)
    tp, fp = np.cumsum(fake, axis=1), np.cumsum(real, axis=1)
    pos, neg = tp[:, -1:], fp[:, -1:]
    out = {}
    if "auc" in names:  # fakes beat the reals strictly below them, and half of the tied ones
        wins = 2 * (fake * (neg - fp)).sum(axis=1) + (fake * real).sum(axis=1)
        out["auc"] = wins / (2.0 * pos[:, 0] * neg[:, 0])
    if "ap" in names:  # sum over thresholds of (recall step) x precision, as scikit-learn defines AP
        seen = tp + fp
        precision = np.divide(tp, seen, out=np.zeros(tp.shape), where=seen > 0)
        out["ap"] = (fake * precision).sum(axis=1) / pos[:, 0]
    if "eer" in names:  # where FNR = FPR on the ROC polyline, interpolated as bench.metrics does
        zeros = np.zeros((len(w), 1))
        fpr = np.hstack([zeros, fp / neg])
        tpr = np.hstack([zeros, tp / pos])
        d = (1.0 - tpr) - fpr
        i = np.argmax(d <= 0, axis=1)
        rows = np.arange(len(w))
        d0, d1, f0, f1 = d[rows, i - 1], d[rows, i], fpr[rows, i - 1], fpr[rows, i]
        step = np.divide(d0, d0 - d1, out=np.zeros_like(d0), where=d1 != 0)
        out["eer"] = np.where(d1 == 0, f1, f0 + step * (f1 - f0))
    if "oracle_acc" in names:  # best accuracy of "score >= t", including "all real"
        correct = np.hstack([neg, tp + (neg - fp)])
        out["oracle_acc"] = correct.max(axis=1) / (pos[:, 0] + neg[:, 0])
    return out


def pool_seeds(per_seed: np.ndarray, *key: str) -> np.ndarray:
    """``[B]`` replicates of the mean over seeds: each replicate draws the seeds with replacement.

    ``per_seed`` is ``[k, B]`` (seed x image resample). With one seed it is returned as is.
    """
    k, b = per_seed.shape
    if k == 1:
        return per_seed[0].copy()
    draws = generator("seeds", *key).integers(0, k, size=(b, k))
    return per_seed[draws, np.arange(b)[:, None]].mean(axis=1)


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates."""
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def p_not_below(top: np.ndarray, row: np.ndarray, higher_is_better: bool) -> float:
    """One-sided paired bootstrap p-value of "the row is worse than the top row".

    ``top`` and ``row`` are replicates on the same image resamples. The p-value is the share of
    resamples in which the row is at least as good as the top row, (1 + count) / (1 + B).
    """
    diff = (top - row) if higher_is_better else (row - top)
    return float((1 + np.count_nonzero(diff <= 0)) / (1 + diff.size))
