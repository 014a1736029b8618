"""forgery-bench: a benchmark harness for generalizable visual-forgery detectors.

Public API: the adapter contract (``Detector``, ``DataConfig``, ``StepContext``, ``FeatureSet``,
``Preset``), the registries' decorators, ``run`` and the errors. Names are imported lazily so that
torch-free modules (``bench.leaderboard``) stay torch-free; importing this package has no side effects.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "DataConfig": "bench.detector", "Detector": "bench.detector", "FeatureSet": "bench.detector",
    "Preset": "bench.detector", "StepContext": "bench.detector",
    "BenchError": "bench.errors", "ConfigError": "bench.errors", "DataError": "bench.errors",
    "ImageError": "bench.errors",
    "register_detector": "bench.registry", "register_source": "bench.registry",
    "run": "bench.api", "check_detector": "bench.testing",
}

__all__ = ["BenchError", "ConfigError", "DataConfig", "DataError", "Detector", "FeatureSet", "ImageError",
           "Preset", "StepContext", "__version__", "check_detector", "register_detector", "register_source", "run"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
