"""The runner's use of the feature cache: which detectors it serves, keys, and what a hit must restore.

A detector is served when it fits on frozen features (``fits_features``) and says what determines
them (``feature_identity()``: backbone spec, weights hash, ...). The namespace adds the eval
transform, the decoding rules' version and the precision; each image's key is its source's
identity/content key (``Source.item_keys``) plus any perturbation applied to that row. The
conversion each image needed when decoded is cached beside its features, so a run served from
the cache records the same conversions as one that decoded the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.cache.store import FeatureCache, Lookup

_CODES = " (conversions)"


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

    def lookup(self, detector, split, transform, accelerator=None, decode: str = "cpu") -> tuple[Lookup, Wanted]:
        """The cached features of ``split``'s rows, as every process of the run agrees on them.

        Processes look up on their own; a row counts as found only when every process found it
        (another writer may land between two lookups), so all of them load the same rows.
        """
        from bench.data.decode import DECODE_VERSION

        identity = self.identity(detector)
        if identity is None:
            return Lookup(None, torch.zeros(len(split.table), dtype=torch.bool)), Wanted("", "", [])
        keys = item_keys(split)
        parts = {**identity, "detector": f"{type(detector).__module__}.{type(detector).__qualname__}",
                 "detector_version": str(type(detector).version), "transform": repr(transform),
                 "tensor_input": bool(detector.tensor_input), "decode": decode, "decode_version": DECODE_VERSION,
                 "precision": self.precision, "libraries": _library_versions()}
        wanted = Wanted(self.cache.namespace(parts), self.cache.namespace({**parts, "what": "conversion codes"}),
                        keys)
        found = self.cache.lookup(wanted.namespace, keys, split=split.name)
        codes = None
        if found.features is not None:
            codes = self.cache.lookup(wanted.codes_namespace, keys, split=split.name + _CODES)
        mask = found.found & (codes.found if codes is not None and codes.features is not None else False)
        if accelerator is not None and accelerator.num_processes > 1:
            agreed = accelerator.reduce(mask.to(accelerator.device, torch.int32), reduction="sum").cpu()
            mask = agreed == accelerator.num_processes
        if mask.any():
            rows = torch.nonzero(mask).flatten().tolist()
            wanted.codes = {r: int(codes.features[r, 0]) for r in rows}
        return Lookup(found.features if mask.any() else None, mask), wanted

    def store(self, wanted: Wanted, feats: torch.Tensor, computed: torch.Tensor, conversions: dict[int, int],
              is_main: bool) -> None:
        """Store the finite rows this run computed (``computed`` mask; main process only) with their codes."""
        if not wanted.keys or not is_main:
            return
        rows = torch.nonzero(computed & torch.isfinite(feats).all(dim=1)).flatten().tolist()
        if not rows:
            return
        keys = [wanted.keys[r] for r in rows]
        self.cache.store(wanted.namespace, keys, feats[rows].float())
        codes = torch.tensor([[float(conversions.get(r, 0))] for r in rows])
        self.cache.store(wanted.codes_namespace, keys, codes)

    def report(self) -> dict[str, Any]:
        """Image-level hits and misses per split, for results.json (conversion-record lookups not counted)."""
        splits = {k: v for k, v in self.cache.report()["splits"].items() if not k.endswith(_CODES)}
        return {"enabled": True, "hits": sum(v["hits"] for v in splits.values()),
                "misses": sum(v["misses"] for v in splits.values()), "splits": splits}


def _library_versions() -> dict[str, str | None]:
    """Versions of the code that computes features: a changed library may change them."""
    from importlib import metadata

    out = {}
    for name in ("torch", "torchvision", "timm", "open_clip_torch", "forgery-bench"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def item_keys(split) -> list[str]:
    """One identity/content key per row of ``split``: the source's key (relative path, size, mtime for
    files) under the source's absolute file root, plus the row's perturbations."""
    table = split.table
    keys: list[str | None] = [None] * len(table)
    names = table["source"].tolist()
    for name, source in split.sources.items():
        rows = [i for i, s in enumerate(names) if s == name]
        root = source.file_root() if hasattr(source, "file_root") else None
        prefix = f"{name}|{root.resolve() if root is not None else '-'}"
        for row, key in zip(rows, source.item_keys(table.iloc[rows])):
            keys[row] = f"{prefix}|{key}"
    ops = table["ops"].tolist() if "ops" in table else [()] * len(table)
    return [f"{k}|{_ops_key(o)}" if o else str(k) for k, o in zip(keys, ops)]


def _ops_key(ops) -> str:
    """A row's degradations as canonical JSON without unset keys: a key added to ``Perturb`` later (at its
    default, None) leaves every stored key as it was."""
    return json.dumps([op.model_dump(mode="json", exclude_none=True) for op in ops], sort_keys=True)
