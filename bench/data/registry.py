"""The registry of data-source types (entry-point group ``bench.sources``) and its decorator."""

from __future__ import annotations

from typing import Any

from bench.data.base import Source
from bench.plugin.registry import Registry


def _check_source(obj: Any) -> str | None:
    if isinstance(obj, type) and issubclass(obj, Source):
        return None
    return f"is {obj!r}, not a bench.data.Source subclass"


SOURCES = Registry("source", "bench.sources", _check_source)

register_source = SOURCES.register
