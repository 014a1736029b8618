"""``bench reproduce RESULT``: re-run a stored result's own run and compare every number.

The run is rebuilt from the structured fields of results.json (protocol, detector and its full
resolved config, seed, batch size, limits), not by parsing the command string, so it is the same
run whatever flags spelled it. Numbers are compared per metric against a stated absolute tolerance.

What makes numbers differ across machines: float32 kernels reduce in different orders on different
instruction sets (AVX2 vs AVX-512, oneDNN vs reference paths) and thread counts, and on GPUs
(TF32, cuDNN algorithm choice). A closed-form fit on frozen features (``clip_linear``) moves in the
last digits only; gradient training amplifies last-digit differences over its steps, so its
metrics can move by a few thousandths. On the same machine with the same versions, a re-run
reproduces every number exactly.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.metrics import is_count

#: Default absolute tolerance per metric across machines (see the module docstring).
TOLERANCE = 0.01


def load_result(path: Path) -> dict[str, Any]:
    """A results.json given as the file, a run directory, or a committed leaderboard result file."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise BenchError(f"{path} does not exist; pass a results.json, a run directory or a file under "
                         f"leaderboard/results/.")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise BenchError(f"{path} is not readable JSON ({err}).") from None


def reproduce(path: Path, out_dir: Path | None = None, data_root: str | None = None) -> tuple[dict, dict]:
    """Re-run the run behind ``path``; return (stored result, new result)."""
    from bench.api import run
    from bench.protocol import Perturb, load_protocol
    from bench.run.runner import RunnerOptions

    stored = load_result(path)
    runner = stored.get("runner", {})
    if runner.get("eval_only") or runner.get("checkpoint"):
        what = "an eval-only run of outside weights" if runner.get("eval_only") else "a warm start from a checkpoint"
        raise BenchError(f"{path} is {what}; reproduce it with `bench run --checkpoint` and the same weights file "
                         f"({runner.get('checkpoint')}), since the weights are not part of the result.")
    proto = load_protocol(_protocol_source(Path(path), stored))
    if proto.sha256() != stored["protocol"]["sha256"]:
        raise BenchError(f"Protocol {proto.name} changed since {path} was made (sha256 "
                         f"{stored['protocol']['sha256'][:12]} vs {proto.sha256()[:12]} now); it cannot be re-run as it was.")
    _check_rebuilds(path, stored, proto)  # before training: a changed detector would be known only hours later
    perturb = runner.get("perturb")
    opts = RunnerOptions(batch_size=runner.get("batch_size", 64), max_steps=runner.get("max_steps"),
                         skip_bad_images=bool(runner.get("skip_bad_images")), precision=runner.get("precision"),
                         threads=runner.get("threads"),
                         cache=bool((runner.get("feature_cache") or {"enabled": True}).get("enabled", True)))
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
    new = run(_protocol_source(Path(path), stored), stored["detector"]["name"], seed=stored["seed"],
              overrides=stored["detector"]["config"], data_root=data_root, out_dir=out, opts=opts,
              limit=runner.get("limit"), check_images=bool(runner.get("check_images")),
              perturb=Perturb(**perturb) if perturb else None)
    return stored, new


def _check_rebuilds(path: Path, stored: dict, proto: Any) -> None:
    """Refuse a result whose detector config this code resolves to another hash (version or defaults changed)."""
    from bench.plugin.factory import resolve_detector

    detector, want = stored["detector"], stored["detector"]["config_sha256"]
    try:
        found = resolve_detector(detector["name"], detector["config"], proto.detector_defaults).config_sha256()
    except BenchError as err:
        raise BenchError(f"The detector config of {path} cannot be rebuilt by this code ({err}); the detector's "
                         "settings changed since, so reproduce it with the bench that made it.") from None
    if found != want:
        raise BenchError(f"The detector config of {path} cannot be rebuilt by this code (hash {want[:12]} vs "
                         f"{found[:12]}); the detector's version or defaults changed since, so reproduce it with the "
                         "bench that made it.")


def _protocol_source(path: Path, stored: dict) -> str:
    """The protocol file a run directory was started with (its config.yaml), else the registered name."""
    config = (path if path.is_dir() else path.parent) / "config.yaml"
    if config.is_file():
        from bench.inputs import read_yaml

        recorded = (read_yaml(config, "Run config") or {}).get("arguments", {}).get("protocol")
        if recorded and Path(recorded).is_file():
            return recorded
    return stored["protocol"]["name"]


def compare(stored: dict, new: dict, tolerance: float = TOLERANCE) -> list[dict[str, Any]]:
    """One row per (test set or group, metric): stored, new, difference, within tolerance."""
    rows = []
    for section in ("metrics", "groups"):
        for name, values in stored.get(section, {}).items():
            for metric, value in values.items():
                if is_count(metric) or not isinstance(value, (int, float)):
                    continue
                again = new.get(section, {}).get(name, {}).get(metric)
                diff = None if again is None else again - value
                rows.append({"where": name if section == "metrics" else f"[{name}]", "metric": metric,
                             "stored": value, "new": again, "diff": diff,
                             "agree": diff is not None and abs(diff) <= tolerance})
    return rows


def machine_note(stored: dict, new: dict) -> str:
    """What differs between the machine that made ``stored`` and this one (CPU, ISA level, versions)."""
    a, b = stored.get("env", {}), new.get("env", {})
    notes = []
    for key in ("torch", "timm", "open_clip_torch", "numpy", "device"):
        if a.get(key) != b.get(key):
            notes.append(f"{key} {a.get(key)} → {b.get(key)}")
    cpu_a, cpu_b = a.get("cpu") or {}, b.get("cpu") or {}
    if not cpu_a:
        notes.append("the stored run recorded no CPU model")
    elif (cpu_a.get("model"), cpu_a.get("isa_level")) != (cpu_b.get("model"), cpu_b.get("isa_level")):
        notes.append(f"CPU {cpu_a.get('model')} ({cpu_a.get('isa_level')}) → {cpu_b.get('model')} "
                     f"({cpu_b.get('isa_level')})")
    return "; ".join(notes) or "same CPU model, ISA level and library versions"
