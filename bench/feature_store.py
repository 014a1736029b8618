"""The runner's use of the feature cache: which detectors it serves, keys, and what a hit must restore.

A detector is served when it fits on frozen features (``fits_features``) and says what determines
them (``feature_identity()``: backbone spec, weights hash, ...). The namespace adds the eval
transform, the decoding rules' version and the precision; each image's key is its source's
identity/content key (``Source.item_keys``) plus any perturbation applied to that row. The
conversion each image needed when decoded is cached beside its features, so a run served from
the cache records the same conversions as one that decoded the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bench.cache import FeatureCache, Lookup


@dataclass
class Wanted:
    """What one split asked the cache for."""

    namespace: str
    codes_namespace: str
    keys: list[str]
    #: Conversion codes of the rows found in the cache (row -> code).
    codes: dict[int, int] = field(default_factory=dict)


class FeatureStore:
    """Frozen features of served detectors, looked up and stored per image across runs and processes."""

    def __init__(self, precision: str):
        self.cache = FeatureCache()
        _ = self.cache.base  # a misplaced $BENCH_CACHE fails now, before any features are computed
        self.precision = precision
        self._identity: dict[int, dict[str, Any] | None] = {}

    def serves(self, detector) -> bool:
        """True when ``detector``'s features may come from the cache."""
        return bool(detector.fits_features) and self.identity(detector) is not None

    def identity(self, detector) -> dict[str, Any] | None:
        """The detector's feature identity, computed once per detector object (it may hash weights)."""
        if id(detector) not in self._identity:
            self._identity[id(detector)] = detector.feature_identity() if detector.fits_features else None
        return self._identity[id(detector)]

    def lookup(self, detector, split, transform) -> tuple[Lookup, Wanted]:
        """The cached features of ``split``'s rows (a miss for every row when keys are unavailable)."""
        from bench.data import base

        identity = self.identity(detector)
        keys = item_keys(split) if identity is not None else None
        n = len(split.table)
        if keys is None:
            return Lookup(None, torch.zeros(n, dtype=torch.bool)), Wanted("", "", [])
        parts = {**identity, "detector": f"{type(detector).__module__}.{type(detector).__qualname__}",
                 "transform": repr(transform), "tensor_input": bool(detector.tensor_input),
                 "decode_version": getattr(base, "DECODE_VERSION", "1"), "precision": self.precision}
        wanted = Wanted(self.cache.namespace(parts), self.cache.namespace({**parts, "what": "conversion codes"}),
                        keys)
        found = self.cache.lookup(wanted.namespace, keys, split=split.name)
        if found.features is not None:
            codes = self.cache.lookup(wanted.codes_namespace, keys, split=f"{split.name} (conversions)")
            if codes.features is not None:
                rows = torch.nonzero(codes.found & found.found).flatten().tolist()
                wanted.codes = {r: int(codes.features[r, 0]) for r in rows}
            # Features without their conversion record are recomputed, so the record stays whole.
            found = Lookup(found.features, found.found & codes.found)
        return found, wanted

    def store(self, wanted: Wanted, split, feats: torch.Tensor, conversions: dict[int, int], is_main: bool) -> None:
        """Store the finite rows of ``feats`` (main process only) with their conversion codes."""
        if not wanted.keys or not is_main:
            return
        rows = torch.nonzero(torch.isfinite(feats).all(dim=1)).flatten().tolist()
        if not rows:
            return
        keys = [wanted.keys[r] for r in rows]
        self.cache.store(wanted.namespace, keys, feats[rows].float())
        codes = torch.tensor([[float(conversions.get(r, 0))] for r in rows])
        self.cache.store(wanted.codes_namespace, keys, codes)

    def report(self) -> dict[str, Any]:
        """Hits and misses per split, for results.json."""
        return self.cache.report()


def item_keys(split) -> list[str] | None:
    """One identity/content key per row of ``split`` (None when a source cannot name its images)."""
    table = split.table
    keys: list[str | None] = [None] * len(table)
    for name, source in split.sources.items():
        if not hasattr(source, "item_keys"):
            return None
        rows = [i for i, s in enumerate(table["source"].tolist()) if s == name]
        sub = table.iloc[rows]
        for row, key in zip(rows, source.item_keys(sub)):
            keys[row] = f"{name}|{key}"
    ops = table["ops"].tolist() if "ops" in table else [()] * len(table)
    return [f"{k}|{tuple(o)!r}" if o else str(k) for k, o in zip(keys, ops)]
