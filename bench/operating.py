"""Operating points of a detector's scores: TPR at a fixed FPR, and the calibration of P(fake).

Pure numpy on logits (fake = 1, a score > 0 means fake, sigmoid(score) = P(fake)); :mod:`bench.metrics`
exposes them as ``tpr_at_fpr1``, ``tpr_at_fpr5`` and ``ece``. Never imports torch.
"""

from __future__ import annotations

import numpy as np

#: Equal-width bins of P(fake) = sigmoid(score) on [0, 1] for ``ece``.
ECE_BINS = 15

#: ``tpr_at_fpr<k>``: the false-positive rate, in percent, at which the true-positive rate is read.
FPR_PERCENT = {"tpr_at_fpr1": 1, "tpr_at_fpr5": 5}


def roc_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(tp, fp)``: fakes and reals with ``score >= t`` at each distinct score t, high to low, after ``(0, 0)``."""
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, y = np.asarray(scores, dtype=np.float64)[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # one ROC point per distinct score
    return np.r_[0, np.cumsum(y)[last]], np.r_[0, np.cumsum(~y)[last]]


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, percent: int) -> float:
    """The true-positive rate of the ROC at a false-positive rate of ``percent``/100 (its upper step).

    That is the largest TPR of ``score >= t`` over thresholds whose FPR is at most ``percent``%,
    counted in integers (``100 * fp <= percent * n_real``), so 1% of 100 reals allows exactly one.
    """
    tp, fp = roc_counts(labels, scores)
    inside = int(np.count_nonzero(100 * fp <= percent * fp[-1]))  # fp never decreases: a prefix
    return float(tp[inside - 1] / tp[-1])


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(fake) = sigmoid(score) over ``bins`` equal-width bins on [0, 1].

    ``sum over bins of (images in bin / images) * |share of fakes in bin - mean P(fake) in bin|``;
    P(fake) = 1 falls in the last bin. Scores are logits.
    """
    from scipy.special import expit

    y = np.asarray(labels, dtype=np.float64)
    p = expit(np.asarray(scores, dtype=np.float64))
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    gap = np.bincount(which, weights=y - p, minlength=bins)
    return float(np.abs(gap).sum() / y.size)
