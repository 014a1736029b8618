"""``bench validate``: a protocol file checked as far as it can be without its data.

The schema (:mod:`bench.protocol`) checks keys and references; this adds what needs the data-source
types: catalog names, registered source types and synthetic subsets, each reported at its line.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.registry import SOURCES
from bench.data.sources.synthetic import parse_subset
from bench.errors import ConfigError, did_you_mean
from bench.inputs import read_text
from bench.protocol import Protocol, catalog, load_protocol, located_error, protocol_files


def check_sources(proto: Protocol, text: str, where: str) -> None:
    """Check what can be checked without data: catalog names, source types and synthetic subsets.

    ``bench validate`` calls it, so a misspelled generator or domain fails there, at its line,
    instead of at ``bench run``.
    """
    specs = {}
    for name, spec in proto.sources.items():
        if isinstance(spec, str):
            known = catalog()
            if spec not in known:
                raise located_error(text, where, ("sources", name), f"source {name!r} refers to {spec!r}, which is "
                                    f"not in any sources.yaml.{did_you_mean(spec, known)}")
            spec = known[spec]
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in SOURCES.names():
            raise located_error(text, where, ("sources", name), f"source {name!r} has type {kind!r}; use one of "
                                f"{', '.join(SOURCES.names())}.{did_you_mean(str(kind), SOURCES.names())}")
        specs[name] = spec
    for path, split in proto.splits():
        if specs[split.source].get("type") != "synthetic":
            continue
        for i, subset in enumerate(split.subsets or []):
            try:
                parse_subset(subset)
            except ConfigError as err:
                raise located_error(text, where, (*path, "subsets", i), str(err)) from None


def validate_file(path: str | Path) -> Protocol:
    """:func:`load_protocol` plus :func:`check_sources`: what ``bench validate`` runs on each file."""
    proto = load_protocol(path)
    files = protocol_files()
    file = Path(path) if str(path).endswith((".yaml", ".yml")) else files[str(path)]
    check_sources(proto, read_text(file, "Protocol file"), str(file))
    return proto
