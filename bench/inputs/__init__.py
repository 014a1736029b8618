"""Input hardening: the one place that reads YAML, confines paths and checks counts a user passes.

Every YAML file bench reads (protocol files, ``sources.yaml``, a run's ``config.yaml``, grid files,
``-o`` values) goes through :func:`read_yaml` / :func:`load_yaml`: size, nesting, alias expansion and
integers are bounded and duplicate keys are errors naming both lines. Every path a run writes or a
source reads is checked by :mod:`bench.inputs.paths` (one path component for run, protocol, detector
and test-set names; nothing an OS cannot take; nothing that resolves outside the data root). Seeds
and core counts are checked by :mod:`bench.inputs.values`. This package imports nothing of bench
but the errors, so every layer may use it.
"""

from bench.inputs.paths import (
    Confinement,
    check_component,
    check_os_path,
    inside,
    os_path_problem,
)
from bench.inputs.values import SEED_MAX, check_seeds, check_threads, check_workers, usable_cores
from bench.inputs.yaml_reader import (
    MAX_YAML_BYTES,
    YamlDocument,
    load_yaml,
    read_text,
    read_yaml,
    yaml_document,
)

__all__ = ["MAX_YAML_BYTES", "SEED_MAX", "Confinement", "YamlDocument", "check_component", "check_os_path",
           "check_seeds", "check_threads", "check_workers", "inside", "load_yaml", "os_path_problem", "read_text",
           "read_yaml", "usable_cores", "yaml_document"]
