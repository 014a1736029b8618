"""A result's protocol definition: stored by ``submit`` (schema 2 leaderboards) or the registered file."""

from __future__ import annotations

import functools
from typing import Any

from bench.errors import BenchError
from bench.leaderboard.collect import LeaderboardError


def definition_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """The resolved protocol a result was run with, or None when neither stored nor registered.

    A stored definition must hash to the result's ``protocol.sha256``; a registered protocol is used
    only when its hash equals the result's (an older version's runs get None).
    """
    proto = result["protocol"]
    stored = proto.get("definition")
    if isinstance(stored, dict):
        from bench.protocol import Protocol

        try:
            sha = Protocol.model_validate(stored).sha256()
        except ValueError as err:
            raise LeaderboardError(f"Result {result['run_id']} stores an invalid protocol definition ({err}); "
                                   "restore the file from its run.") from None
        if sha != proto["sha256"]:
            raise LeaderboardError(f"Result {result['run_id']} stores a protocol definition whose hash {sha[:12]} "
                                   f"is not its protocol.sha256 {proto['sha256'][:12]}; restore the file.")
        return stored
    return _registered(proto["name"], proto["sha256"])


@functools.lru_cache(maxsize=64)
def _registered(name: str, sha: str) -> dict[str, Any] | None:
    from bench.protocol import load_protocol, protocol_files

    try:
        if name not in protocol_files():
            return None
        proto = load_protocol(name)
    except BenchError:
        return None
    return proto.model_dump(mode="json") if proto.sha256() == sha else None
