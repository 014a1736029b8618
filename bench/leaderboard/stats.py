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
                     videos: np.ndarray | None = None, threshold: float = 0.0,
                     columns: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Metrics of one test set under each row of ``weights`` (``[B, n]`` integer counts per image).

    ``names`` are metric names of :data:`bench.metrics.METRIC_NAMES` (``acc`` adds ``real_acc`` and
    ``fake_acc``). ``videos`` (video index per image) is needed for ``video_auc``: a video's weight
    is its frames' (equal) weight and its score the mean of its frames' scores. With ``columns``,
    image i's weights are ``weights[:, columns[i]]`` (counts per unit, gathered once).
    Returns ``{name: [B] float64}``.
    """
    names = list(names)
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    weights = np.asarray(weights, dtype=np.int64)
    columns = np.arange(weights.shape[1]) if columns is None else np.asarray(columns)
    out = _cumulative(scores, labels, weights, columns, set(names) - {"video_auc"}, threshold)
    if "video_auc" in names:
        if videos is None:
            raise ValueError("video_auc needs the video index of every image")
        _, first, inverse = np.unique(videos, return_index=True, return_inverse=True)
        mean = np.bincount(inverse, weights=scores) / np.bincount(inverse)
        out["video_auc"] = _cumulative(mean, labels[first], weights, columns[first], {"auc"}, threshold)["auc"]
    return {k: out[k] for k in [*names, "real_acc", "fake_acc"] if k in out}


def _cumulative(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, columns: np.ndarray,
                names: set[str], threshold: float) -> dict[str, np.ndarray]:
    """Every metric from the weighted counts of fakes (tp) and reals (fp) at or above each distinct score.

    Counts are integers (exact); each metric costs a few passes over ``[B, distinct scores]``.
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    sorted_weights = weights[:, columns[order]]
    fake = sorted_weights * y
    real = sorted_weights - fake
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if len(starts) < len(s):  # tied scores form one ROC point
        fake, real = np.add.reduceat(fake, starts, axis=1), np.add.reduceat(real, starts, axis=1)
    tp, fp = np.cumsum(fake, axis=1), np.cumsum(real, axis=1)
    pos, neg = tp[:, -1], fp[:, -1]
    rows = np.arange(len(tp))
    out = {}
    if "auc" in names:  # fakes beat the reals strictly below them, and half of the tied ones
        wins = 2 * (pos * neg - np.einsum("ij,ij->i", fake, fp)) + np.einsum("ij,ij->i", fake, real)
        out["auc"] = wins / (2.0 * pos * neg)
    if "ap" in names:  # sum over thresholds of (recall step) x precision, as scikit-learn defines AP
        seen = tp + fp
        precision = np.divide(tp, seen, out=np.zeros(tp.shape), where=seen > 0)
        out["ap"] = np.einsum("ij,ij->i", fake, precision) / pos
    if "eer" in names:  # where FNR = FPR on the ROC polyline from (0, 0), interpolated as bench.metrics does
        i = _crossing(tp, fp, pos, neg)
        f1 = fp[rows, i] / neg
        d1 = (1.0 - tp[rows, i] / pos) - f1
        start = i == 0  # the crossing segment starts at (0, 0), where FNR - FPR = 1
        f0 = np.where(start, 0.0, fp[rows, i - 1] / neg)
        d0 = np.where(start, 1.0, (1.0 - tp[rows, i - 1] / pos) - f0)
        step = np.divide(d0, d0 - d1, out=np.zeros_like(d0), where=d1 < 0)
        out["eer"] = np.where(d1 < 0, f0 + step * (f1 - f0), f1)
    if "acc" in names:  # "fake" means score > threshold: a prefix of the distinct scores, high to low
        above = int(np.count_nonzero(s[starts] > threshold))
        hit_fake = tp[:, above - 1] if above else np.zeros_like(pos)
        hit_real = neg - (fp[:, above - 1] if above else 0)
        out.update(acc=(hit_fake + hit_real) / (pos + neg), real_acc=hit_real / neg, fake_acc=hit_fake / pos)
    if "oracle_acc" in names:  # best accuracy of "score >= t", including "all real"
        out["oracle_acc"] = np.maximum((tp - fp).max(axis=1) + neg, neg) / (pos + neg)
    return out


def _crossing(tp: np.ndarray, fp: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per row, the first ROC point with FNR <= FPR, i.e. ``tp·neg + fp·pos >= pos·neg`` (exact integers).

    The left side never decreases along a row, so a binary search finds it in log(n) steps.
    """
    lo, hi = np.zeros(len(tp), dtype=np.int64), np.full(len(tp), tp.shape[1] - 1)
    rows = np.arange(len(tp))
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        reached = tp[rows, mid] * neg + fp[rows, mid] * pos >= pos * neg
        hi, lo = np.where(reached, mid, hi), np.where(reached, lo, mid + 1)
    return lo


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
