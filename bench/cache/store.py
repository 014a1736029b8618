"""On-disk cache of frozen features, shared by runs and processes (``bench cache info|clear``).

It serves detectors that fit on frozen, deterministic features without augmentation (``clip_linear``
with its logistic probe, and any detector that declares its features frozen). ``univfd`` trains a
layer under augmentation and ``sam``/``corit`` tune the backbone, so their features change every
step: they never use it. Detectors do not know the cache exists; the runner consults it.

A *namespace* is the hash of everything that determines a feature except the image (the detector's
feature identity such as backbone spec, weights hash and image size, the transform, the decoding
rules' version, any perturbation, precision). An *item key* identifies one image and its content
(``path|size|mtime_ns`` for files, source spec + generator version + id for synthetic images).
Features are reused per item: a changed image misses alone, a subset of a cached split hits.

Layout: ``<root>/features-v1/<namespace>/`` holds ``namespace.json`` (the parts, for people) and
shards (``bench.cache.shards``), one per stored key list and named by it. Writes go to a unique
temporary file renamed into place (atomic on POSIX): readers never see a partial shard, and
concurrent writers (the processes of one run, or two runs) each leave a complete, equivalent file,
so no lock is needed. A damaged shard is reported with a ``CacheWarning``, removed and read as a
miss. Hits refresh a shard's mtime, so ``clear(older_than_days=N)`` drops what no run used in N days.
Root: ``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/forgery-bench``, else ``~/.cache/forgery-bench``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from bench.cache import shards as sh
from bench.cache.shards import SUFFIX, CacheWarning
from bench.errors import ConfigError

__all__ = ["ENV", "CacheWarning", "FeatureCache", "Lookup", "default_root", "describe_parts", "file_item_key",
           "human_bytes"]

ENV = "BENCH_CACHE"
FORMAT_DIR = "features-v1"
_PARTS = "namespace.json"


def default_root() -> Path:
    """``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/forgery-bench``, else ``~/.cache/forgery-bench``."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "forgery-bench"


def file_item_key(path: str | os.PathLike) -> str:
    """Identity and content key of an image file: ``absolute path|size|mtime_ns``."""
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


@dataclass
class Lookup:
    """What the cache holds for a list of item keys."""

    #: [N, D] float32 in item-key order; rows not found are zero. None when nothing was found.
    features: torch.Tensor | None
    #: [N] bool, True where the row came from the cache.
    found: torch.Tensor

    @property
    def missing(self) -> list[int]:
        """Positions (in item-key order) that must be computed."""
        return torch.nonzero(~self.found).flatten().tolist()

    @property
    def complete(self) -> bool:
        """True when every row was found."""
        return bool(self.found.all())

    def merge(self, computed: torch.Tensor) -> torch.Tensor:
        """All N rows: the cached ones plus ``computed`` ([len(missing), D], in ``missing`` order)."""
        if self.features is None:
            return computed.float()
        out = self.features.clone()
        out[~self.found] = computed.float()
        return out


class FeatureCache:
    """Features stored once per (namespace, image) and reused across runs, seeds and processes.

    ``stats`` counts item-level hits and misses per split label; ``report()`` is what results.json
    records. Call ``store`` on the main process only; it is also safe when every process does.
    """

    def __init__(self, root: Path | str | None = None, enabled: bool = True):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.enabled = enabled
        self.stats: dict[str, dict[str, int]] = {}
        self._parts: dict[str, Any] = {}

    @property
    def base(self) -> Path:
        """The directory that holds this format's namespaces."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"The feature cache location {self.root} is a file, not a directory; "
                              f"point {ENV} at a directory (or remove the file).")
        return self.root / FORMAT_DIR

    def namespace(self, parts: Mapping[str, Any]) -> str:
        """Stable id (sha256 of canonical JSON) of everything that determines a feature except the image."""
        canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
        ns = hashlib.sha256(canonical.encode()).hexdigest()
        self._parts[ns] = json.loads(canonical)
        return ns

    # -- reading -----------------------------------------------------------------------------------
    def lookup(self, namespace: str, item_keys: Sequence[str], split: str = "all") -> Lookup:
        """Cached features of ``item_keys`` (any subset may be found); counts hits/misses under ``split``."""
        found = torch.zeros(len(item_keys), dtype=torch.bool)
        features = None
        if self.enabled and len(item_keys) and (self.base / namespace).is_dir():
            features = self._gather(self.base / namespace, sh.item_digests(item_keys), found)
        hits = int(found.sum())
        counts = self.stats.setdefault(split, {"hits": 0, "misses": 0})
        counts["hits"] += hits
        counts["misses"] += len(item_keys) - hits
        return Lookup(features if hits else None, found)

    def load(self, namespace: str, item_keys: Sequence[str], split: str = "all") -> torch.Tensor | None:
        """[N, D] float32 in item-key order when every key is cached, else None."""
        found = self.lookup(namespace, item_keys, split)
        return found.features if found.complete and len(item_keys) else None

    def _gather(self, ns_dir: Path, wanted: np.ndarray, found: torch.Tensor) -> torch.Tensor | None:
        shards, keys = [], []
        for path in sorted(ns_dir.glob("*" + SUFFIX)):
            k = sh.read_keys(path)
            if k is not None:
                shards.append(path)
                keys.append(k)
        if not shards:
            return None
        # Match 128-bit digests as (hi, lo) uint64 pairs: sort the stored hi, binary-search the wanted
        # ones, then require lo to match too. A hi collision can only cause a miss, never a wrong hit.
        stored = np.concatenate(keys).view(np.uint64)
        shard_of = np.repeat(np.arange(len(shards)), [len(k) for k in keys])
        row_of = np.concatenate([np.arange(len(k)) for k in keys])
        order = np.argsort(stored[:, 0], kind="stable")
        query = wanted.view(np.uint64)
        cand = order[np.minimum(np.searchsorted(stored[order, 0], query[:, 0]), len(order) - 1)]
        match = (stored[cand, 0] == query[:, 0]) & (stored[cand, 1] == query[:, 1])
        out: torch.Tensor | None = None
        for s in np.unique(shard_of[cand[match]]):
            feats = sh.read_features(shards[s])
            if feats is None or (out is not None and feats.shape[1] != out.shape[1]):
                continue
            where = np.flatnonzero(match & (shard_of[cand] == s))
            rows = row_of[cand[where]]
            found[where] = True
            sh.touch(shards[s])
            if out is None and len(rows) == len(wanted) == len(feats) and (rows == np.arange(len(rows))).all():
                return feats  # the shard written for exactly this list: no copy
            if out is None:
                out = torch.zeros(len(wanted), feats.shape[1])
            out[where] = feats[rows]
        return out

    # -- writing -----------------------------------------------------------------------------------
    def store(self, namespace: str, item_keys: Sequence[str], features: torch.Tensor,
              meta: Mapping[str, Any] | None = None) -> bool:
        """Save ``features`` ([N, D], finite) for ``item_keys``; False (with a warning) when it cannot write."""
        if not self.enabled or not len(item_keys):
            return False
        features = features.detach().to("cpu", torch.float32).contiguous()
        if features.ndim != 2 or features.shape[0] != len(item_keys):
            raise ValueError(f"store() needs [N, D] features for N={len(item_keys)} keys, got {tuple(features.shape)}")
        if not torch.isfinite(features.sum(dim=1)).all():  # a NaN/inf anywhere makes its row sum non-finite
            raise ValueError("store() takes finite features only; leave out rows that were not computed")
        digests = sh.item_digests(item_keys)
        crc = sh.checksum(features.numpy(), digests)
        ns_dir = self.base / namespace
        path = ns_dir / sh.shard_name(digests)
        try:
            if sh.metadata(path).get("checksum") == crc:
                sh.touch(path)  # another process or an earlier run wrote the same entry
                return True
            ns_dir.mkdir(parents=True, exist_ok=True)
            if not (ns_dir / _PARTS).exists():
                record = json.dumps({"namespace": namespace, "parts": self._parts.get(namespace), "created": sh.now()})
                sh.atomic_write(ns_dir / _PARTS, lambda tmp: tmp.write_text(record))
            sh.write_shard(path, features, digests, crc, meta or {})
        except (OSError, SafetensorError) as err:  # safetensors reports a full disk in its own exception type
            warnings.warn(f"Could not write feature cache entry {path} ({err}); the run goes on without it. "
                          f"Check free space and permissions there, or set {ENV} elsewhere.", CacheWarning,
                          stacklevel=2)
            return False
        return True

    # -- housekeeping ------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Item-level hits and misses, total and per split, for ``results.json`` (no paths)."""
        return {"enabled": self.enabled, "hits": sum(c["hits"] for c in self.stats.values()),
                "misses": sum(c["misses"] for c in self.stats.values()),
                "splits": {k: dict(v) for k, v in self.stats.items()}}

    def info(self) -> list[dict[str, Any]]:
        """One record per namespace: parts, shards, items, feature size, bytes on disk, last use."""
        rows = []
        for ns_dir in _namespace_dirs(self.base):
            shards = sorted(ns_dir.glob("*" + SUFFIX))
            described = [sh.describe(p) for p in shards]
            try:
                parts = json.loads((ns_dir / _PARTS).read_text()).get("parts")
            except (OSError, ValueError):
                parts = None
            last = max((p.stat().st_mtime for p in shards), default=None)
            rows.append({"namespace": ns_dir.name, "parts": parts, "shards": len(shards),
                         "items": sum(d[0] for d in described),
                         "dim": next((d[1] for d in described if d[1] is not None), None),
                         "bytes": sum(p.stat().st_size for p in ns_dir.iterdir() if p.is_file()),
                         "meta": [d[2] for d in described],
                         "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(last)) if last else None})
        return rows

    def clear(self, older_than_days: float | None = None) -> tuple[int, int]:
        """Delete shards not used for ``older_than_days`` (all when None); returns (shards, bytes) removed."""
        if older_than_days is not None and not older_than_days >= 0:
            raise ConfigError(f"--older-than must be a number of days >= 0, got {older_than_days}.")
        cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else float("inf")
        removed = freed = 0
        for ns_dir in _namespace_dirs(self.base):
            for path in list(ns_dir.iterdir()):
                if path.name == _PARTS or not path.is_file():
                    continue
                size, mtime = path.stat().st_size, path.stat().st_mtime
                if mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += path.suffix == SUFFIX
                    freed += size
            if not any(ns_dir.glob("*" + SUFFIX)):
                freed += _remove_namespace_dir(ns_dir)
        return removed, freed


def _namespace_dirs(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def _remove_namespace_dir(ns_dir: Path) -> int:
    try:
        size = (ns_dir / _PARTS).stat().st_size
        (ns_dir / _PARTS).unlink()
        ns_dir.rmdir()
        return size
    except OSError:
        return 0  # a writer just added something: the namespace stays


def describe_parts(parts, width: int = 60) -> str:
    """The short, scalar parts of a namespace (what its features are of), cut to ``width`` (``bench cache info``)."""
    if not isinstance(parts, dict):
        return "?"
    text = " ".join(f"{k}={v}" for k, v in parts.items() if isinstance(v, str | int | float) and len(str(v)) <= 40)
    return text if len(text) <= width else text[: width - 1] + "…"


def human_bytes(n: float) -> str:
    """``n`` bytes as B, KB, MB or GB (binary units)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
