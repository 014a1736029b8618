"""Registry: entry-point discovery, lazy loading, duplicates, unknown names, type checks."""

from importlib.metadata import EntryPoint

import pytest

from bench.errors import ConfigError
from bench.plugin import registry
from bench.plugin.detector import Detector
from bench.plugin.registry import DETECTORS, Registry


def test_builtin_detectors_come_from_entry_points():
    assert {"clip_linear", "univfd"} <= set(DETECTORS.names())
    assert DETECTORS.entry("clip_linear").provider.startswith("forgery-bench ")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ConfigError, match=r"Unknown detector 'clip_linaer'.*Did you mean 'clip_linear'"):
        DETECTORS.get("clip_linaer")


def _fake_entry_points(points):
    def entry_points(group):
        return [p for p in points if p.group == group]
    return entry_points


class _Dist:
    def __init__(self, name):
        self.name, self.version = name, "1.0"


def _ep(name, value, dist):
    ep = EntryPoint(name, value, "bench.detectors")
    return ep._for(_Dist(dist)) if hasattr(ep, "_for") else ep


def test_duplicate_names_from_two_distributions_fail(monkeypatch):
    points = [_ep("dup", "detectors.clip_linear:ClipLinear", "pkg-a"), _ep("dup", "detectors.clip_linear:UNIVFD", "pkg-b")]
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(points))
    reg = Registry("detector", "bench.detectors", registry._check_detector)
    with pytest.raises(ConfigError, match="declared twice.*pkg-a.*pkg-b"):
        reg.names()


def test_loading_is_lazy_and_type_checked(monkeypatch):
    points = [_ep("bad", "bench.errors:did_you_mean", "pkg-a"), _ep("good", "detectors.clip_linear:ClipLinear", "pkg-a")]
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(points))
    reg = Registry("detector", "bench.detectors", registry._check_detector)
    assert reg.names() == ["bad", "good"]  # nothing imported yet
    with pytest.raises(ConfigError, match="not a bench.Detector subclass"):
        reg.get("bad")
    assert issubclass(reg.get("good"), Detector)


def test_register_decorator_and_conflict():
    reg = Registry("detector", "bench.no_such_group", registry._check_detector)

    @reg.register("mine")
    class Mine(Detector):
        pass

    assert reg.get("mine") is Mine
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("mine", type("Other", (Detector,), {}))


def test_plugin_module_that_does_not_import_is_a_clear_error():
    with pytest.raises(ConfigError, match="Plugin module 'no_such_module_xyz' could not be found"):
        registry.import_plugins(["no_such_module_xyz"])
