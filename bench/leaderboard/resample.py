"""The bootstrap design of a protocol: which images are resampled together, and the replicates of each run.

A replicate draws, with replacement, the *units* of every *stratum*; an image's weight is its
unit's count. Strata keep reals and fakes apart (so the class counts stay fixed) and are shared
by test sets that read the same images, so a group mean sees the correlation those images cause:

- ``synthetic`` sources (``bench/data/sources/synthetic.py``): ids are ``split/subset/label/index`` and the
  k-th image of a split and label starts from the same crop in every subset (the k-th real is the
  same crop in every domain; the k-th fake shares its base crop across generators and is the same
  image for one generator in every domain). The unit is (source, split, label, index), so every
  test set of a split draws the same counts per index, for reals and for fakes.
- Paired test sets of other sources with the same ``real`` split (and test-level ``perturb``)
  draw their reals together; their fakes, and every other test set, are strata of their own.

Elsewhere the unit is the ``group`` column: an image, or a whole video for frame datasets. Without
a protocol definition every test set is its own stratum per class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.leaderboard.stats import RESAMPLES, resample_counts, weighted_metrics

Replicates = dict[str, dict[str, np.ndarray]]  # test set -> metric -> [B]
_CELLS = 2_000_000  # resamples x rows per block: bounds memory on frame datasets with 100k rows
_CLASS = {0: "real", 1: "fake"}


def synthetic_sources(definition: dict[str, Any] | None) -> set[str]:
    """Names of the definition's sources of type ``synthetic`` (their ids carry split, label and index)."""
    sources = (definition or {}).get("sources") or {}
    return {name for name, spec in sources.items() if isinstance(spec, dict) and spec.get("type") == "synthetic"}


def real_pools(definition: dict[str, Any] | None, tests: list[str]) -> dict[str, str]:
    """``{test: real stratum}`` of the reals of non-synthetic sources: shared by paired tests with one ``real``."""
    pools = {}
    for test in tests:
        spec = (definition or {}).get("test", {}).get(test) or {}
        shared = "real" in spec  # a paired test set: its real split and the test-level degradation
        pools[test] = json.dumps([spec["real"], spec.get("perturb")], sort_keys=True) if shared else f"test:{test}"
    return pools


def strata(frame: pd.DataFrame, test: str, definition: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(stratum, unit)`` of every row of one test set's predictions (``source, id, group, label``)."""
    synthetic = synthetic_sources(definition)
    pool = real_pools(definition, [test])[test]
    sources = frame["source"].astype(str).tolist()
    ids, groups = frame["id"].astype(str).tolist(), frame["group"].astype(str).tolist()
    names: dict[tuple, str] = {}  # stratum names, made once each
    stratum, unit = [], []
    for source, item, group, label in zip(sources, ids, groups, frame["label"].astype(int).tolist()):
        parts = item.split("/") if source in synthetic else []
        if len(parts) == 4 and parts[2] == str(label):  # split / subset / label / index
            key = (_CLASS[label], "synthetic", source, parts[0])
            unit.append(f"{source}:{parts[0]}/{parts[2]}/{parts[3]}")
        else:
            key = ("real", pool) if label == 0 else ("fake", test)
            unit.append(f"{source}:{group}")
        if key not in names:
            names[key] = json.dumps(list(key))
        stratum.append(names[key])
    return np.array(stratum), np.array(unit)


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
        """What two or more test sets draw together: ``synthetic reals``, ``synthetic fakes``, ``paired reals``."""
        found = set()
        for name, tests in self.tests.items():
            key = json.loads(name)
            if len(tests) > 1:
                found.add(f"synthetic {key[0]}s" if _synthetic(name) else f"paired {key[0]}s")
        return sorted(found)


def replicates(frames: dict[str, pd.DataFrame], tests: list[str], metrics: list[str],
               definition: dict[str, Any] | None, resamples: int = RESAMPLES) -> dict[str, Replicates]:
    """Bootstrap replicates ``{run key: {test: {metric: [B]}}}`` of runs of one protocol version."""
    return bootstrap(frames, tests, metrics, definition, resamples)[0]


def bootstrap(frames: dict[str, pd.DataFrame], tests: list[str], metrics: list[str],
              definition: dict[str, Any] | None, resamples: int = RESAMPLES) -> tuple[dict[str, Replicates], Design]:
    """:func:`replicates` and the :class:`Design` they were drawn with.

    ``frames`` maps a run's key to its combined predictions (``test_set`` column); rows without a
    finite score (images skipped by that run) are left out. The counts depend only on the strata's
    units, so every run (and every detector) is scored on the same resamples: that pairing is what
    the tie test needs. Counts are drawn once per stratum from a generator keyed by its name.
    """
    design = Design()
    parts: dict[tuple[str, str], pd.DataFrame] = {}
    for run_id, frame in frames.items():
        frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
        for test, part in frame.groupby("test_set", sort=False):
            if test not in tests:
                continue
            stratum, unit = strata(part, str(test), definition)
            parts[run_id, test] = part.assign(stratum=stratum, unit=unit, label=part["label"].astype(int))
            plain = ~np.isin(stratum, [s for s in set(stratum) if _synthetic(s)])
            design.videos |= bool(pd.Series(unit[plain]).duplicated().any())
            for s, u in zip(stratum, unit):
                design.units.setdefault(s, set()).add(u)
            for s in set(stratum):
                design.tests.setdefault(s, set()).add(test)
    order = {s: np.array(sorted(u)) for s, u in design.units.items()}
    counts = {s: resample_counts(len(u), resamples, *json.loads(s)) for s, u in order.items()}
    joint: dict[str, tuple[np.ndarray, dict[str, int]]] = {}  # per test: its strata side by side, offsets
    out: dict[str, Replicates] = {run_id: {} for run_id in frames}
    for (run_id, test), part in parts.items():
        if test not in joint:
            mine = sorted(s for s, t in design.tests.items() if test in t)
            offsets = dict(zip(mine, np.cumsum([0] + [len(order[s]) for s in mine[:-1]]).tolist()))
            joint[test] = np.hstack([counts[s] for s in mine]), offsets
        weights, offsets = joint[test]
        columns = np.empty(len(part), dtype=np.int64)
        for s, rows in part.groupby("stratum", sort=False).indices.items():
            columns[rows] = offsets[s] + np.searchsorted(order[s], part["unit"].to_numpy()[rows])
        videos = pd.factorize(part["source"].astype(str) + ":" + part["group"].astype(str))[0]
        scores, fake = part["score"].to_numpy(dtype=float), part["label"].to_numpy() == 1
        step = max(1, _CELLS // max(1, len(part)))
        blocks = [weighted_metrics(scores, fake, weights[start:start + step], metrics, videos=videos, columns=columns)
                  for start in range(0, resamples, step)]
        out[run_id][test] = {m: np.concatenate([b[m] for b in blocks]) for m in blocks[0]}
    return out, design
