"""The bootstrap design of a protocol: which images are resampled together, and the replicates of each run.

Strata: the fakes of each test set, and the reals of each *real pool*. Test sets share a pool when
they read the same real images: paired test sets with the same ``real`` split, and, on the
``synthetic`` source, every test set of one split and post-processing domain (its k-th real image is
the same crop whatever the generator, see ``bench/data/synthetic.py``). A pool's reals are resampled
once per replicate for all its test sets, so a group mean sees the correlation they cause. The unit
is the ``group`` column: an image, or a whole video for frame datasets. Without a protocol
definition every test set is its own pool.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from bench.leaderboard.stats import RESAMPLES, resample_counts, weighted_metrics

Replicates = dict[str, dict[str, np.ndarray]]  # test set -> metric -> [B]
_CELLS = 2_000_000  # resamples x rows per block: bounds memory on frame datasets with 100k rows


def real_pools(definition: dict[str, Any] | None, tests: list[str]) -> dict[str, tuple[str, bool]]:
    """``{test: (pool name, synthetic)}``; ``synthetic`` means real ids are keyed without their generator."""
    if not definition:
        return {t: (f"test:{t}", False) for t in tests}
    pools = {}
    for test in tests:
        spec = dict(definition["test"][test])
        if "real" in spec:  # a paired test set: its real split and the test-level degradation
            pools[test] = (json.dumps([spec["real"], spec.get("perturb")], sort_keys=True), False)
            continue
        source = definition["sources"].get(spec["source"])
        synthetic = isinstance(source, dict) and source.get("type") == "synthetic"
        if synthetic:
            domains = sorted({"@" + s.partition("@")[2] for s in spec.get("subsets") or [""]})
            spec.update(subsets=domains, fake_perturb=None)
            pools[test] = (json.dumps(spec, sort_keys=True), True)
        else:
            pools[test] = (f"test:{test}", False)
    return pools


def unit_keys(frame: pd.DataFrame, synthetic: bool) -> np.ndarray:
    """The resampling unit of every row: ``source:group``; synthetic reals drop the generator from the id."""
    groups = frame["group"].astype(str).tolist()
    if synthetic:
        for i, item in enumerate(frame["id"].astype(str).tolist()):
            parts = item.split("/", 3)
            if len(parts) == 4:
                groups[i] = f"{parts[0]}/@{parts[1].partition('@')[2]}/{parts[2]}/{parts[3]}"
    return np.array([f"{s}:{g}" for s, g in zip(frame["source"].astype(str).tolist(), groups)])


def replicates(frames: dict[str, pd.DataFrame], tests: list[str], metrics: list[str],
               definition: dict[str, Any] | None, resamples: int = RESAMPLES) -> dict[str, Replicates]:
    """Bootstrap replicates ``{run key: {test: {metric: [B]}}}`` of runs of one protocol version.

    ``frames`` maps a run's key to its combined predictions (``test_set`` column); rows without a
    finite score (images skipped by that run) are left out. The counts depend only on the test
    sets' units, so every run (and every detector) is scored on the same resamples: that pairing
    is what the tie test needs.
    """
    pools = real_pools(definition, tests)
    parts: dict[tuple[str, str], pd.DataFrame] = {}
    units: dict[tuple[str, str], set[str]] = {}
    for run_id, frame in frames.items():
        frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
        for test, part in frame.groupby("test_set", sort=False):
            if test not in pools:
                continue
            part = part.assign(unit=unit_keys(part, pools[test][1]), label=part["label"].astype(int))
            parts[run_id, test] = part
            units.setdefault(("real", pools[test][0]), set()).update(part.loc[part["label"] == 0, "unit"])
            units.setdefault(("fake", test), set()).update(part.loc[part["label"] == 1, "unit"])
    order = {k: np.array(sorted(v)) for k, v in units.items()}
    counts = {k: resample_counts(len(v), resamples, *k) for k, v in order.items()}
    joint: dict[str, np.ndarray] = {}  # per test set: [reals of its pool | its fakes], built once
    out: dict[str, Replicates] = {run_id: {} for run_id in frames}
    for (run_id, test), part in parts.items():
        fake = part["label"].to_numpy() == 1
        keys = part["unit"].to_numpy()
        real_key, fake_key = ("real", pools[test][0]), ("fake", test)
        if test not in joint:
            joint[test] = np.hstack([counts[real_key], counts[fake_key]])
        columns = np.where(fake, len(order[real_key]) + np.searchsorted(order[fake_key], keys),
                           np.searchsorted(order[real_key], keys))
        videos = pd.factorize(part["source"].astype(str) + ":" + part["group"].astype(str))[0]
        scores = part["score"].to_numpy(dtype=float)
        step = max(1, _CELLS // max(1, len(part)))
        blocks = []
        for start in range(0, resamples, step):
            blocks.append(weighted_metrics(scores, fake, joint[test][start:start + step], metrics, videos=videos,
                                           columns=columns))
        out[run_id][test] = {m: np.concatenate([b[m] for b in blocks]) for m in blocks[0]}
    return out
