"""Which results measure a metric against degradation strength.

Two kinds exist: test sets of one protocol that differ only in a degradation (a ``synthetic``
subset's ``@jpeg75`` domain, or a test-level ``perturb``), and variant protocols whose every test
set carries the same ``perturb`` as another protocol's (``universal_jpeg75`` of ``universal``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bench.protocol.perturb import LEVELS

#: Degradation kinds, how they are named on axes, and whether a larger level is milder.
KINDS = {"jpeg": ("JPEG quality", True), "resize": ("resize factor", True), "blur": ("blur σ", False),
         "noise": ("noise σ", False)}
_OP = re.compile(r"^(jpeg|resize|blur|noise)(\d+(?:\.\d+)?)$")


def _perturb_ops(perturb: dict[str, Any] | None) -> dict[str, float]:
    perturb = perturb or {}
    ops = {k: float(perturb[k]) for k in LEVELS if perturb.get(k) is not None}
    if perturb.get("chain") is not None:  # degraded, so never the clean point, but on no kind's axis
        ops[f"chain_{perturb['chain']}"] = float(perturb.get("seed") or 0)
    if "downscale" in ops:
        ops["resize"] = ops.pop("downscale")
    return ops


def degradations_by_test(definition: dict[str, Any]) -> dict[str, tuple[str, dict[str, float]]]:
    """``{test: (base, {kind: level})}``: tests with the same base differ only in their degradation."""
    out = {}
    for test, raw in definition["test"].items():
        spec, ops = dict(raw), _perturb_ops(raw.get("perturb"))
        spec.pop("perturb", None)
        source = definition["sources"].get(spec.get("source"))
        subsets = spec.get("subsets") or []
        if isinstance(source, dict) and source.get("type") == "synthetic" and len(subsets) == 1:
            generator, _, domain = subsets[0].partition("@")
            matches = [_OP.match(part) for part in domain.split("+") if part]
            if all(matches):
                ops.update({m.group(1): float(m.group(2)) for m in matches})
                spec["subsets"] = [generator]
        out[test] = (json.dumps(spec, sort_keys=True), ops)
    return out


def within_protocol(definition: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Panels ``{kind, clean, points: [(level, test)], combined: [tests]}`` from one protocol's test sets."""
    if not definition:
        return []
    by_base: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for test, (base, ops) in degradations_by_test(definition).items():
        by_base.setdefault(base, []).append((test, ops))
    panels = []
    for members in by_base.values():
        clean = [t for t, ops in members if not ops]
        if not clean:
            continue
        combined = [t for t, ops in members if len(ops) > 1]
        for kind, (_, milder_up) in KINDS.items():
            points = sorted(((ops[kind], t) for t, ops in members if set(ops) == {kind}), reverse=milder_up)
            if points:
                panels.append({"kind": kind, "clean": clean[0], "points": points, "combined": combined})
    return panels


def _normalised(definition: dict[str, Any]) -> tuple[str, dict[str, float] | None]:
    """The definition without names and degradations, and the one degradation all its tests share."""
    found = []
    tests = {}
    for test, raw in definition["test"].items():
        spec = json.loads(json.dumps(raw))
        ops = _perturb_ops(spec.pop("perturb", None))
        for part in ("real", "fake"):
            if isinstance(spec.get(part), dict):
                ops.update(_perturb_ops(spec[part].pop("perturb", None)))
        found.append(json.dumps(ops, sort_keys=True))
        tests[test] = spec
    rest = {k: v for k, v in definition.items() if k not in ("name", "version", "description", "test")}
    uniform = json.loads(found[0]) if found and len(set(found)) == 1 else None
    return json.dumps({**rest, "test": tests}, sort_keys=True), uniform


def protocol_variants(definition: dict[str, Any] | None, others: dict[str, dict[str, Any] | None]) -> list[dict]:
    """Panels ``{kind, points: [(level, protocol name)]}`` of variant protocols of a clean protocol.

    ``others`` maps protocol names (newest version of each on the leaderboard) to their definitions.
    """
    if not definition:
        return []
    base, ops = _normalised(definition)
    if ops:  # only the clean protocol's page draws the curve
        return []
    panels: dict[str, list[tuple[float, str]]] = {}
    for name, other in others.items():
        if not other or other.get("name") == definition.get("name"):
            continue
        other_base, other_ops = _normalised(other)
        if other_base == base and other_ops and len(other_ops) == 1:
            (kind, level), = other_ops.items()
            panels.setdefault(kind, []).append((level, name))
    return [{"kind": k, "points": sorted(v, reverse=KINDS[k][1])} for k, v in panels.items()]
