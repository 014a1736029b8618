"""The feature cache's file format: one safetensors shard per stored key list (see ``bench.cache.store``).

A shard holds ``features`` [n, D] float32 and ``keys`` [n, 16] uint8 (blake2b-128 of each item key);
its metadata holds a CRC-32 of both, the creation time and the caller's ``meta`` as JSON. safetensors
rejects a truncated file (its header states every tensor's extent); the CRC catches other damage.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

SUFFIX = ".safetensors"
#: Errors that mean "this shard cannot be used", never a crash.
BAD_SHARD = (SafetensorError, OSError, KeyError, ValueError)


class CacheWarning(UserWarning):
    """A cache entry could not be read or written; the run goes on and recomputes."""


def item_digests(item_keys: Sequence[str]) -> np.ndarray:
    """blake2b-128 of each item key, as an [N, 16] uint8 array."""
    joined = bytearray().join(hashlib.blake2b(k.encode(), digest_size=16).digest() for k in item_keys)
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, 16)


def shard_name(digests: np.ndarray) -> str:
    """File name of the shard for a key list: every writer of the same list picks the same name."""
    return hashlib.blake2b(digests.tobytes(), digest_size=16).hexdigest() + SUFFIX


def checksum(*arrays: np.ndarray) -> str:
    """CRC-32 over the arrays' bytes (about 2 GB/s: verifying costs less than reading)."""
    crc = 0
    for array in arrays:
        crc = zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def write_shard(path: Path, features: torch.Tensor, digests: np.ndarray, crc: str, meta: Mapping[str, Any]) -> None:
    """Write a shard atomically (unique temporary file, then rename)."""
    metadata = {"checksum": crc, "created": now(), "meta": json.dumps(dict(meta), default=str)}
    tensors = {"features": features, "keys": torch.from_numpy(digests)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a unique temporary file renamed into place, so no reader sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def metadata(path: Path) -> dict[str, str]:
    """Header metadata of a shard ({} when absent or unreadable)."""
    try:
        with safe_open(path, "np") as f:
            return f.metadata() or {}
    except BAD_SHARD:
        return {}


def read_keys(path: Path) -> np.ndarray | None:
    """A shard's [n, 16] key digests; None (with a warning, shard removed) when unreadable."""
    ino = _inode(path)
    try:
        with safe_open(path, "np") as f:
            return f.get_tensor("keys").reshape(-1, 16)
    except BAD_SHARD as err:
        discard(path, err, ino)
        return None


def read_features(path: Path) -> torch.Tensor | None:
    """A shard's features after the size and CRC-32 checks; None (warned, removed) when damaged.

    Read through the "np" framework on purpose: it takes header and data from one mapping of the
    file, while "pt" reopens the file by name for the data, so a writer renaming a new version into
    place in between would pair one version's checksum with the other's data.
    """
    ino = _inode(path)
    try:
        with safe_open(path, "np") as f:
            expected = (f.metadata() or {}).get("checksum")
            feats, keys = f.get_tensor("features"), f.get_tensor("keys")
        if expected != checksum(feats, keys):
            raise ValueError(f"checksum mismatch, stored {expected}")
        return torch.from_numpy(feats)
    except BAD_SHARD as err:
        discard(path, err, ino)
        return None


def describe(path: Path) -> tuple[int, int | None, dict]:
    """(rows, feature size, meta) from a shard's header, without reading its data."""
    try:
        with safe_open(path, "np") as f:
            n, dim = f.get_slice("features").get_shape()
            return n, dim, json.loads((f.metadata() or {}).get("meta", "{}"))
    except BAD_SHARD as err:
        return 0, None, {"unreadable": str(err)}


def discard(path: Path, err: Exception, ino: int | None) -> None:
    """Warn and remove a bad shard, unless a writer has meanwhile renamed a fresh one into its place."""
    warnings.warn(f"Feature cache entry {path} is unreadable ({err}); it is removed and recomputed.",
                  CacheWarning, stacklevel=3)
    if ino is not None and _inode(path) == ino:
        path.unlink(missing_ok=True)


def touch(path: Path) -> None:
    """Mark a shard as used now (``clear --older-than`` keeps it)."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only shared cache still serves hits


def now() -> str:
    """Local time, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None
