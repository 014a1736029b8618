"""The canonical hash of a protocol, stable across schema additions.

A result records the sha256 of the protocol it ran under, and the leaderboard re-hashes stored
definitions (``bench.leaderboard.definitions``), so a key added to the schema later is left out of
the hash while it holds its default: a protocol written before it keeps its hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Keys added after the first schema, with the default that leaves them out of the hash: top-level keys,
#: and keys of every ``perturb``/``fake_perturb`` mapping.
LATE_TOP = {"test_resolution": "detector", "rounds": None}
LATE_PERTURB = {"shorter_side": None, "chain": None, "seed": None}


def canonical_sha256(data: dict[str, Any]) -> str:
    """sha256 of a protocol's JSON form (``model_dump(mode="json")``) as sorted JSON, late defaults left out."""
    text = json.dumps(_hashable(data, LATE_TOP), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def same_definition(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two JSON forms are one protocol: equal once late keys holding their defaults are left out.

    A run made before a key was added to the schema records a definition without it; that is the
    same protocol as today's dump with the key at its default (and has the same hash).
    """
    return _hashable(a, LATE_TOP) == _hashable(b, LATE_TOP)


def _hashable(data: Any, late: dict[str, Any]) -> Any:
    """``data`` without the late keys that hold their defaults."""
    if isinstance(data, list):
        return [_hashable(v, {}) for v in data]
    if not isinstance(data, dict):
        return data
    return {k: _hashable(v, LATE_PERTURB if k in ("perturb", "fake_perturb") else {})
            for k, v in data.items() if not (k in late and v == late[k])}
