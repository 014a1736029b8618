"""forgery-bench: a benchmark harness for generalizable visual-forgery detectors.

Public API: the adapter contract (``Detector``, ``DataConfig``, ``StepContext``, ``FeatureSet``,
``Preset``), the registries' decorators, ``run`` and the errors. Names are imported lazily so that
torch-free modules (``bench.leaderboard``) stay torch-free; importing this package has no side effects.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "DataConfig": "bench.plugin.types", "Detector": "bench.plugin.detector", "FeatureSet": "bench.plugin.types",
    "Preset": "bench.plugin.detector", "StepContext": "bench.plugin.types",
    "BenchError": "bench.errors", "ConfigError": "bench.errors", "DataError": "bench.errors",
    "ImageError": "bench.errors",
    "register_detector": "bench.plugin.registry", "register_source": "bench.data.registry",
    "run": "bench.api", "check_detector": "bench.testing",
}

__all__ = ["BenchError", "ConfigError", "DataConfig", "DataError", "Detector", "FeatureSet", "ImageError",
           "Preset", "StepContext", "__version__", "check_detector", "register_detector", "register_source", "run"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
