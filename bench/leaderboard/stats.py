"""The leaderboard's statistics: resampling counts, intervals, Monte Carlo errors, paired tests, Holm, rank intervals.

Everything a page says about uncertainty is computed here (tables and figures only format it):

- **Resamples.** A bootstrap resample is a vector of integer counts over the units of a stratum
  (:func:`resample_counts`, numpy's PCG64 seeded by :data:`SEED` and the stratum's name); every row
  of a table is scored on the same resamples, which is what makes comparisons paired.
- **Seeds are fixed, not drawn.** A row's value is the mean over its training seeds of the metric;
  its interval is the percentile interval of that mean over image resamples (:func:`interval`). It
  says how much the row's number depends on which test images were drawn, for these trained
  models; the spread between seeds is reported on its own (min–max), never mixed in: with three
  seeds, resampling seeds has 10 distinct outcomes and understates their variance.
- **Comparisons.** A row's family is its paired comparisons with every other ranked row; the
  two-sided p-value of each (:func:`paired_test`: the difference over its bootstrap standard error)
  is adjusted by Holm within the family (:func:`holm`), and a difference is significant when the
  adjusted p is at most :data:`ALPHA`. So everything said about one row holds together with
  probability >= 95%.
- **Rank intervals** (:func:`rank`) follow from that family: row r ranks at least 1 + (rows
  significantly above it) and at most (rows) - (rows significantly below it). The rows that could
  be first are those whose interval starts at 1; they contain the best row with probability >= 95%.
  Both are made monotone in the point ranks by widening (an interval never excludes more than any
  row ranked below it does), which keeps the coverage and means a lower row is never "could be
  first" while a higher one is not.
- **Monte Carlo error.** Each p-value and bound carries its Monte Carlo standard error; a decision
  whose adjusted p lies within two of them of α is marked borderline.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

#: Resamples of the primary metric (its intervals, every test and rank interval), and of every other
#: cell (the first of the same resamples), the generator's fixed seed, the interval level and the tests' level.
RESAMPLES = 10_000
CELL_RESAMPLES = 2_000
SEED = 20260101
LEVEL = 0.95
ALPHA = 0.05
#: Differences below this are float rounding (a mean over seeds of equal values), not differences.
EPS = 1e-12


def generator(*parts: str | int) -> np.random.Generator:
    """A PCG64 generator seeded by :data:`SEED` and a stable hash of ``parts`` (same on every machine)."""
    return np.random.default_rng([SEED, *(zlib.crc32(str(p).encode()) for p in parts)])


def resample_counts(n_units: int, resamples: int, *key: str | int) -> np.ndarray:
    """``[resamples, n_units]`` counts of drawing ``n_units`` units with replacement, ``resamples`` times.

    Drawn in blocks of 1,000 resamples, so the first k·1,000 resamples do not depend on how many follow.
    """
    rng = generator("units", *key)
    out = np.empty((resamples, n_units), dtype=np.int32)
    for start in range(0, resamples, 1000):
        b = min(1000, resamples - start)
        draws = rng.integers(0, n_units, size=(b, n_units)) + (np.arange(b) * n_units)[:, None]
        out[start:start + b] = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units)
    return out


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates."""
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bound_mc_error(replicates: np.ndarray, level: float = LEVEL) -> float:
    """Monte Carlo standard error of the interval's bounds (the larger of the two).

    A q-quantile of B replicates moves by about sqrt(q(1-q)/B) in probability; that distance is read
    off the replicates' own distribution (half the width between the quantiles at q ± that distance).
    """
    b = len(replicates)
    errors = []
    for q in ((1 - level) / 2, (1 + level) / 2):
        d = np.sqrt(q * (1 - q) / b)
        lo, hi = np.quantile(replicates, [max(q - d, 0.0), min(q + d, 1.0)])
        errors.append((hi - lo) / 2)
    return float(max(errors))


def paired_test(a: np.ndarray, b: np.ndarray, diff: float) -> tuple[float, float]:
    """Two-sided p-value of "rows a and b have the same value", and its Monte Carlo standard error.

    ``a`` and ``b`` are replicates on the same resamples and ``diff`` the observed a - b. The test
    divides ``diff`` by the bootstrap standard error of the paired difference and reads the normal
    tail, p = erfc(|z| / √2): unlike counting replicates, it reaches the small p-values that Holm
    over many pairs needs (a count of B resamples cannot go below 1/(B+1)). The Monte Carlo error
    comes from the standard error's own (relative error 1/√(2(B-1))): 2·φ(z)·|z|/√(2(B-1)).
    """
    b_count = len(a)
    se = float(np.std(a - b, ddof=1))
    if se <= EPS:  # the same scores (up to float rounding of a mean over seeds): nothing to test
        return (1.0 if abs(diff) <= EPS else 0.0), 0.0
    z = abs(diff) / se
    p = math.erfc(z / math.sqrt(2.0))
    density = math.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi)
    return p, 2.0 * density * z / math.sqrt(2.0 * (b_count - 1))


def holm(pvalues: list[float]) -> tuple[list[float], list[int], list[int]]:
    """Holm-adjusted p-values; for each, the index of the p-value that set it; and each one's multiplier.

    Sorted ascending, the j-th smallest p (j = 0, 1, ...) is multiplied by m - j, and the adjusted
    value is the running maximum of those products (capped at 1), so adjusted p-values keep the
    order of the raw ones. The index and multiplier give an adjusted p-value's Monte Carlo error.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted, source, multiplier = [0.0] * m, [0] * m, [0] * m
    best, best_at = -1.0, 0
    for j, i in enumerate(order):
        multiplier[i] = m - j
        value = min(1.0, (m - j) * pvalues[i])
        if value > best:
            best, best_at = value, i
        adjusted[i], source[i] = best, best_at
    return adjusted, source, multiplier


@dataclass
class Pair:
    """Row ``a`` (ranked above) against row ``b``: their difference a - b, its interval, and the raw test."""

    a: str
    b: str
    diff: float
    lo: float
    hi: float
    p: float
    mc_error: float = 0.0


@dataclass
class Verdict:
    """One pair within one row's family: Holm-adjusted p, its Monte Carlo error, significance, borderline."""

    p_holm: float
    mc_error: float
    significant: bool
    borderline: bool


@dataclass
class Ranking:
    """What :func:`rank` decides, per row key: its family's verdicts, rank interval, and the marks."""

    resamples: int
    rank: dict[str, int] = field(default_factory=dict)
    interval: dict[str, tuple[int, int]] = field(default_factory=dict)
    could_be_first: dict[str, bool] = field(default_factory=dict)
    borderline: dict[str, bool] = field(default_factory=dict)
    pairs: list[Pair] = field(default_factory=list)
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)  # (row, other) in row's family

    def pair(self, a: str, b: str) -> Pair | None:
        """The test of ``a`` against ``b`` (either order; ``a`` is the higher-ranked row in the result)."""
        return next((p for p in self.pairs if {p.a, p.b} == {a, b}), None)


def rank(replicates: dict[str, np.ndarray], estimates: dict[str, float], higher: bool,
         alpha: float = ALPHA, level: float = LEVEL) -> Ranking:
    """Point ranks, 95% rank intervals and the rows that could be first.

    ``replicates``: the primary metric of each row on the shared resamples; ``estimates``: its point
    value. Rows are ranked by estimate (ties share a rank: 1, 2, 2, 4). Every pair is tested once;
    each row's family is its comparisons with every other row, Holm-adjusted within the family, so
    each row's rank interval holds with probability >= 1 - α, and the rows that could be first
    (interval starting at 1) contain the best row with probability >= 1 - α.
    """
    sign = 1.0 if higher else -1.0
    keys = sorted(replicates, key=lambda k: (-sign * estimates[k], k))
    out = Ranking(resamples=len(next(iter(replicates.values()))) if replicates else 0)
    for i, k in enumerate(keys):
        tied = i > 0 and abs(estimates[k] - estimates[keys[i - 1]]) <= EPS
        out.rank[k] = out.rank[keys[i - 1]] if tied else i + 1
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            diff = estimates[a] - estimates[b]
            lo, hi = interval(replicates[a] - replicates[b], level)
            p, error = paired_test(replicates[a], replicates[b], diff)
            out.pairs.append(Pair(a, b, diff, lo, hi, p, error))
    lower, upper = {}, {}
    for k in keys:
        family = [p for p in out.pairs if k in (p.a, p.b)]
        adjusted, source, multiplier = holm([p.p for p in family])
        for pair, p_adj, at in zip(family, adjusted, source):
            error = min(1.0, multiplier[at] * family[at].mc_error)
            other = pair.b if pair.a == k else pair.a
            out.verdicts[k, other] = Verdict(p_adj, error, p_adj <= alpha and sign * pair.diff > 0,
                                             abs(p_adj - alpha) <= 2 * error)
        above = [p.a for p in family if p.b == k and out.verdicts[k, p.a].significant]
        below = [p.b for p in family if p.a == k and out.verdicts[k, p.b].significant]
        lower[k], upper[k] = 1 + len(above), len(keys) - len(below)
    for i, k in enumerate(keys):  # monotone: widen by the rows below (lower end) and above (upper end)
        out.interval[k] = (min(lower[m] for m in keys[i:]), max(upper[m] for m in keys[:i + 1]))
        out.could_be_first[k] = out.interval[k][0] == 1
        out.borderline[k] = any(v.borderline for (row, _), v in out.verdicts.items() if row == k)
    return out


def seed_spread(values: list[float]) -> tuple[float, float] | None:
    """``(min, max)`` of a row's per-seed values, or None with one seed."""
    return (float(min(values)), float(max(values))) if len(values) > 1 else None
