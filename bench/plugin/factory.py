"""Resolve a detector name (class or preset) and settings into a validated config, then build it.

Precedence, lowest first: the ``Config`` defaults, the preset's overrides, the protocol's
``detector_defaults`` (only keys the detector has), the protocol's per-detector block
``detector_defaults.<detector name>`` (every key must exist), the user's ``-o key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.errors import ConfigError, did_you_mean
from bench.inputs import load_yaml
from bench.plugin.detector import Detector, Preset
from bench.plugin.settings import build_config


@dataclass
class DetectorSpec:
    """A fully resolved detector: class, validated config and provenance."""

    name: str
    cls: type[Detector]
    config: Any
    provider: str
    description: str = ""
    paper: str | None = None
    defaults_applied: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Detector:
        """Instantiate the detector (seed the RNG first for a reproducible init)."""
        return self.cls(self.config)

    def config_dict(self) -> dict[str, Any]:
        """The resolved settings as plain data."""
        return dataclasses.asdict(self.config)

    def config_sha256(self) -> str:
        """Hash of the detector class and resolved settings; results with equal hashes are comparable."""
        blob = json.dumps({"class": f"{self.cls.__module__}.{self.cls.__qualname__}", "version": self.cls.version,
                           "config": self.config_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        """The ``detector`` block of results.json (without parameter counts)."""
        return {"name": self.name, "class": f"{self.cls.__module__}.{self.cls.__qualname__}",
                "version": self.cls.version, "paper": self.paper or self.cls.paper, "distribution": self.provider,
                "config": self.config_dict(), "config_sha256": self.config_sha256(),
                "protocol_defaults_applied": self.defaults_applied}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``1e-4``, ``true``, ``[1, 2]``) under the limits
    of :func:`bench.inputs.load_yaml` (no alias bombs, 64-bit integers, no duplicate keys)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override {item!r} is not key=value; write it like -o lr=1e-4.")
        out[key.strip()] = load_yaml(value, f"Override -o {key.strip()}") if value.strip() else None
    return out


def resolve_detector(name: str, overrides: dict[str, Any] | None = None,
                     protocol_defaults: dict[str, Any] | None = None) -> DetectorSpec:
    """Look ``name`` up in the registry and validate its settings (no model is built yet)."""
    from bench.plugin.registry import DETECTORS

    entry = DETECTORS.entry(name)
    obj = entry.obj
    preset = obj if isinstance(obj, Preset) else Preset(detector=obj)
    cls = preset.detector
    if not (isinstance(cls.Config, type) and dataclasses.is_dataclass(cls.Config)):
        raise ConfigError(f"The Config of detector {name!r} is not a dataclass; decorate it with @dataclass "
                          f"(bench validates its keys and types).")
    keys = {f.name for f in dataclasses.fields(cls.Config)}
    defaults = protocol_defaults or {}
    applied = {k: v for k, v in defaults.items() if k in keys}
    own = defaults.get(name) if name not in keys else None
    if isinstance(own, dict):  # a per-detector block, e.g. ``npr: {lr: 2.0e-4}``
        unknown = sorted(set(own) - keys)
        if unknown:
            raise ConfigError(f"The protocol's detector_defaults.{name} sets {unknown[0]!r}, which detector "
                              f"{name!r} does not have.{did_you_mean(unknown[0], keys)} Valid settings: "
                              f"{', '.join(sorted(keys))}.")
        applied.update(own)
    values = {**preset.overrides, **applied, **(overrides or {})}
    config = build_config(cls.Config, values, where=f"detector {name!r}")
    description = preset.description or (cls.__doc__ or "").strip().split("\n")[0]
    return DetectorSpec(name, cls, config, entry.provider, description, preset.paper, applied)
