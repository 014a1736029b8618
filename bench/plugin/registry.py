"""Entry-point registries for detectors, data-source types and protocol packs.

Built-ins are declared in our own ``pyproject.toml`` exactly as a third party declares theirs, so
there is one discovery path. Discovery is lazy (first lookup) and loading is lazy (per name).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bench.errors import ConfigError, did_you_mean


@dataclass
class Entry:
    """One registered name: where it comes from and, once loaded, the object itself."""

    name: str
    provider: str  # "<distribution> <version>", or "<module> (plugin)" for decorator registrations
    entry_point: EntryPoint | None = None
    obj: Any = None


class Registry:
    """Name → object map filled from the ``group`` entry-point group and ``register`` calls.

    ``check`` validates a loaded object and returns an error message, or ``None`` when it is fine.
    """

    def __init__(self, kind: str, group: str, check: Callable[[Any], str | None] | None = None):
        self.kind = kind
        self.group = group
        self.check = check
        self._entries: dict[str, Entry] | None = None

    def _scan(self) -> dict[str, Entry]:
        if self._entries is None:
            found: dict[str, Entry] = {}
            for ep in entry_points(group=self.group):
                dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
                if ep.name in found and found[ep.name].provider != dist:
                    raise ConfigError(
                        f"{self.kind.capitalize()} {ep.name!r} is declared twice in entry-point group "
                        f"{self.group!r}, by {found[ep.name].provider} and by {dist}; uninstall or rename one."
                    )
                found[ep.name] = Entry(ep.name, dist, entry_point=ep)
            self._entries = found
        return self._entries

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator registering an object under ``name`` (default: its ``name`` attribute)."""

        def decorate(obj: Any) -> Any:
            key = name or getattr(obj, "name", None) or obj.__name__
            self.add(key, obj, provider=f"{getattr(obj, '__module__', '?')} (plugin)")
            return obj

        return decorate

    def add(self, name: str, obj: Any, provider: str = "runtime") -> None:
        """Register ``obj`` directly; a name taken by another provider is an error."""
        entries = self._scan()
        if name in entries and entries[name].obj is not obj:
            raise ConfigError(
                f"{self.kind.capitalize()} {name!r} is already registered by {entries[name].provider}; "
                f"choose another name for the one in {provider}."
            )
        self._validate(name, obj)
        entries[name] = Entry(name, provider, obj=obj)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (used by tests and notebooks)."""
        self._scan().pop(name, None)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._scan())

    def entry(self, name: str) -> Entry:
        """The entry for ``name``, loading it on first use; unknown names suggest close matches."""
        entries = self._scan()
        if name not in entries:
            available = ", ".join(sorted(entries)) or "none"
            raise ConfigError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, entries)} Available: {available} "
                f"(see `bench ls {self.kind}s`)."
            )
        item = entries[name]
        if item.obj is None and item.entry_point is not None:
            try:
                obj = item.entry_point.load()
            except Exception as err:  # a broken installed plugin: one sentence, its traceback on BENCH_DEBUG=1
                raise ConfigError(
                    f"{self.kind.capitalize()} {name!r} (entry point {item.entry_point.value!r} of {item.provider}) "
                    f"failed to load: {_reason(err)}; fix or uninstall that package (BENCH_DEBUG=1 shows the "
                    "traceback)."
                ) from err
            self._validate(name, obj, where=f"entry point {item.entry_point.value!r} of {item.provider}")
            item.obj = obj
        return item

    def get(self, name: str) -> Any:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def _validate(self, name: str, obj: Any, where: str = "") -> None:
        problem = self.check(obj) if self.check else None
        if problem:
            raise ConfigError(f"{self.kind.capitalize()} {name!r} ({where or 'registration'}) {problem}.")


def _check_detector(obj: Any) -> str | None:
    from bench.plugin.detector import Detector, Preset

    if isinstance(obj, Preset) or (isinstance(obj, type) and issubclass(obj, Detector)):
        return None
    return f"is {obj!r}, not a bench.Detector subclass or bench.Preset"


def _check_protocol_pack(obj: Any) -> str | None:
    if hasattr(obj, "__path__"):
        return None
    return f"is {obj!r}, not a package of protocol YAML files"


DETECTORS = Registry("detector", "bench.detectors", _check_detector)
PROTOCOLS = Registry("protocol pack", "bench.protocols", _check_protocol_pack)

register_detector = DETECTORS.register


def import_plugins(modules: list[str] | None = None) -> None:
    """Import unpackaged plugin modules (``--plugin`` and ``BENCH_PLUGINS=a,b``) that call ``register_*``.

    A module that cannot be found, or whose own code raises while it is imported, is one
    :class:`ConfigError` naming the module and the exception's own message; the module's traceback is
    kept as the error's cause (the CLI prints it with ``BENCH_DEBUG=1``).
    """
    names = list(modules or [])
    names += [m for m in os.environ.get("BENCH_PLUGINS", "").split(",") if m.strip()]
    for module in names:
        try:
            importlib.import_module(module.strip())
        except ModuleNotFoundError as err:
            if err.name and module.strip().startswith(err.name):
                raise ConfigError(f"Plugin module {module!r} could not be found ({err}); check it is on "
                                  "PYTHONPATH.") from err
            raise ConfigError(f"Plugin module {module!r} failed to import: {_reason(err)}; install what it "
                              "needs (BENCH_DEBUG=1 shows the traceback).") from err
        except (Exception, SystemExit) as err:  # the plugin's own code failed: name it in one sentence
            raise ConfigError(f"Plugin module {module!r} raised while being imported: {_reason(err)}; fix the "
                              "module (BENCH_DEBUG=1 shows the traceback).") from err


def _reason(err: BaseException) -> str:
    """``Type: message`` of an exception, on one line and at most 300 characters."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__
