"""The bootstrap design of a protocol version: which images are resampled together, and each run's replicates.

A replicate draws, with replacement, the *units* of every *stratum*; an image's weight is its
unit's count. Strata keep reals and fakes apart (so the class counts stay fixed) and are shared
by test sets that read the same images, so a group mean sees the correlation those images cause:

- ``synthetic`` sources: the unit is (source, split, label, index) (:func:`bench.data.distinct.unit_keys`),
  so every test set of a split draws the same counts per index, for reals and for fakes.
- Other sources: a stratum is a class of one split *without* its ``perturb``/``fake_perturb``, so
  degraded variants of one split draw the same images, and paired test sets with one ``real``
  split draw their reals together (a paired test's fakes are keyed by its ``fake`` split the same way).

Elsewhere the unit is the ``group`` column: an image, or a whole video for frame datasets. Without
a protocol definition every test set is its own stratum per class. Replicate 0 of every run is the
observed test set (every unit once); replicates 1..B are the resamples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.data.distinct import synthetic_rows, synthetic_sources, unit_keys
from bench.leaderboard.stats import RESAMPLES, resample_counts
from bench.leaderboard.weighted import unit_major_metrics

_CELLS = 4_000_000  # resamples x images per block: bounds memory on frame datasets with 100k rows
_CLASS = {0: "real", 1: "fake"}
_DEGRADATIONS = ("perturb", "fake_perturb", "sanity")  # how a split is read, not which images


def _split_key(split: dict[str, Any]) -> str:
    """The images a split reads: the split without its degradations (and the sanity flag)."""
    return json.dumps({k: v for k, v in split.items() if v is not None and k not in _DEGRADATIONS},
                      sort_keys=True)


def pools(definition: dict[str, Any] | None, test: str) -> dict[int, tuple[str, ...]]:
    """``{label: stratum key}`` of one test set's non-synthetic rows: shared by test sets reading one split."""
    spec = (definition or {}).get("test", {}).get(test) or {}
    if not spec:  # no definition: the test set is its own stratum per class
        return {0: ("real", f"test:{test}"), 1: ("fake", test)}
    real, fake = (spec["real"], spec["fake"]) if "real" in spec else (spec, spec)
    return {0: ("real", "split", _split_key(real)), 1: ("fake", "split", _split_key(fake))}


def strata(frame: pd.DataFrame, test: str, definition: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(stratum, unit)`` of every row of one test set's predictions (``source, id, group, label``)."""
    synthetic = synthetic_sources((definition or {}).get("sources"))
    unit = unit_keys(frame, synthetic)
    labels = frame["label"].astype(int).to_numpy()
    split = frame["id"].astype(str).str.partition("/")[0].to_numpy(dtype=object)
    mine = synthetic_rows(frame, synthetic)
    pool = pools(definition, test)
    names: dict[tuple, str] = {}
    stratum = []
    for source, part, label, synth in zip(frame["source"].astype(str), split, labels, mine):
        key = (_CLASS[label], "synthetic", source, part) if synth else pool[label]
        if key not in names:
            names[key] = json.dumps(list(key))
        stratum.append(names[key])
    return np.array(stratum), unit


def _synthetic(stratum: str) -> bool:
    """Whether a stratum name is a synthetic split's (``[class, "synthetic", source, split]``)."""
    return stratum.startswith(('["real", "synthetic", ', '["fake", "synthetic", ')) and len(json.loads(stratum)) == 4


@dataclass
class Design:
    """The strata of a protocol version's predictions: their units, and which test sets draw from each."""

    units: dict[str, set[str]] = field(default_factory=dict)
    tests: dict[str, set[str]] = field(default_factory=dict)
    videos: bool = False  # some unit outside synthetic sources holds several rows of a test set (a video)

    def shared(self) -> list[str]:
        """What two or more test sets draw together: ``synthetic reals``/``fakes``, ``split reals``/``fakes``."""
        found = set()
        for name, tests in self.tests.items():
            key = json.loads(name)
            if len(tests) > 1:
                found.add(f"synthetic {key[0]}s" if _synthetic(name) else f"split {key[0]}s")
        return sorted(found)

    def unit_counts(self, tests: list[str]) -> dict[str, int]:
        """``{"real": units, "fake": units}`` drawn by the strata of ``tests`` (what a resample draws)."""
        out = {"real": 0, "fake": 0}
        for name, members in self.tests.items():
            if members & set(tests):
                out[json.loads(name)[0]] += len(self.units[name])
        return out


@dataclass
class _Part:
    scores: np.ndarray
    fake: np.ndarray
    videos: np.ndarray
    columns: np.ndarray
    strata: tuple[str, ...]


class Resampler:
    """Replicates of any run's metrics on one test set, every run on the same resamples.

    ``frames`` maps a run's key to its combined predictions (``test_set`` column); rows without a
    finite score (images skipped by that run) are left out. The counts depend only on the strata's
    units, so every run (and every detector) is scored on the same resamples: that pairing is what
    the comparisons need. Counts are drawn once per stratum from a generator keyed by its name.
    """

    def __init__(self, frames: dict[str, pd.DataFrame], tests: list[str], definition: dict[str, Any] | None,
                 resamples: int = RESAMPLES):
        self.resamples, self.design = resamples, Design()
        found: dict[tuple[str, str], tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
        for run_id, frame in frames.items():
            frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
            for test, part in frame.groupby("test_set", sort=False):
                if test not in tests:
                    continue
                stratum, unit = strata(part, str(test), definition)
                found[run_id, str(test)] = part, stratum, unit
                plain = ~np.isin(stratum, [s for s in set(stratum) if _synthetic(s)])
                self.design.videos |= bool(pd.Series(unit[plain]).duplicated().any())
                for s, u in zip(stratum, unit):
                    self.design.units.setdefault(s, set()).add(u)
                for s in set(stratum):
                    self.design.tests.setdefault(s, set()).add(str(test))
        self._order = {s: np.array(sorted(u)) for s, u in self.design.units.items()}
        self._counts: dict[str, np.ndarray] = {}
        self._joint: dict[tuple[str, ...], tuple[np.ndarray, dict[str, int]]] = {}
        self._parts = {key: self._part(*value) for key, value in found.items()}

    def _part(self, part: pd.DataFrame, stratum: np.ndarray, unit: np.ndarray) -> _Part:
        mine = tuple(sorted(set(stratum)))
        offsets = dict(zip(mine, np.cumsum([0] + [len(self._order[s]) for s in mine[:-1]]).tolist()))
        columns = np.empty(len(part), dtype=np.int64)
        for s, rows in pd.Series(stratum).groupby(stratum, sort=False).indices.items():
            columns[rows] = offsets[s] + np.searchsorted(self._order[s], unit[rows])
        videos = pd.factorize(part["source"].astype(str) + ":" + part["group"].astype(str))[0]
        return _Part(part["score"].to_numpy(dtype=float), part["label"].astype(int).to_numpy() == 1, videos,
                     columns, mine)

    def _weights(self, mine: tuple[str, ...]) -> np.ndarray:
        """``[units, 1 + B]``: per unit, the observed count (1), then its count in each resample."""
        if mine not in self._joint:
            for s in mine:
                if s not in self._counts:
                    self._counts[s] = resample_counts(len(self._order[s]), self.resamples, *json.loads(s)).T
            stacked = np.vstack([self._counts[s] for s in mine])
            self._joint[mine] = np.hstack([np.ones((len(stacked), 1), dtype=np.int32), stacked]), {}
        return self._joint[mine][0]

    def has(self, run: str, test: str) -> bool:
        """Whether ``run`` has scores for ``test``."""
        return (run, test) in self._parts

    def metrics(self, run: str, test: str, names: list[str], val_threshold: float | None = None,
                resamples: int | None = None) -> dict[str, np.ndarray]:
        """``{metric: [1 + resamples]}``: the observed value, then the first ``resamples`` replicates."""
        part = self._parts[run, test]
        weights = self._weights(part.strata)
        width = 1 + (self.resamples if resamples is None else resamples)
        step = max(1, _CELLS // max(1, len(part.scores)))
        blocks = [unit_major_metrics(part.scores, part.fake, weights[:, start:min(start + step, width)], names,
                                     videos=part.videos, columns=part.columns, val_threshold=val_threshold)
                  for start in range(0, width, step)]
        return {m: np.concatenate([b[m] for b in blocks]) for m in blocks[0]}
