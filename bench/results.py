"""Run directories: ``config.yaml``, ``train_log.jsonl``, ``predictions/<test>.csv.gz`` and ``results.json``.

``results.json`` is written last and atomically, so a directory with one is a finished run. An
existing run directory is never overwritten.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.errors import BenchError

SCHEMA_VERSION = 1
_PACKAGES = ["forgery-bench", "torch", "torchvision", "timm", "open_clip_torch", "accelerate", "scikit-learn", "numpy"]


def now_iso() -> str:
    """Current UTC time, ISO 8601, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def git_state() -> tuple[str | None, bool | None]:
    """(short sha, dirty) of the checkout this package runs from, or (None, None) outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return sha, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def environment(device: str, num_processes: int, precision: str) -> dict[str, Any]:
    """Library versions, git state and hardware of this run."""
    sha, dirty = git_state()
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"bench": versions.pop("forgery-bench"), "git_sha": sha, "git_dirty": dirty,
            "python": platform.python_version(), **versions, "platform": platform.platform(),
            "device": device, "num_processes": num_processes, "mixed_precision": precision}


def new_run_dir(out_dir: Path, protocol: str, detector: str, seed: int, name: str | None = None) -> Path:
    """The path of a new run directory; an explicit ``name`` that exists already is an error."""
    base = Path(out_dir) / protocol / detector
    if name:
        path = base / name
        if path.exists():
            raise BenchError(f"Run directory {path} already exists; choose another --run-name or --out "
                             "(runs are never overwritten).")
        return path
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path, n = base / f"{stamp}-s{seed}", 1
    while path.exists():
        path, n = base / f"{stamp}-s{seed}-{n}", n + 1
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_run(run_dir: Path, result: dict[str, Any], config: dict[str, Any], log: list[dict[str, Any]],
              predictions: dict[str, pd.DataFrame], save_checkpoint: Callable[[Path], Any] | None = None,
              rename_on_clash: bool = False) -> Path:
    """Create ``run_dir`` (it must not exist) and write every file of the run; results.json last.

    ``save_checkpoint(run_dir)`` writes the trained weights before results.json marks the run finished.
    With ``rename_on_clash`` (automatic names), a directory made meanwhile by a run that started in
    the same second gets this run a ``-<n>`` suffix instead of losing the finished run.
    Returns the directory actually written.
    """
    run_dir, base, n = Path(run_dir), Path(run_dir), 1
    while True:
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            break
        except FileExistsError:
            if not rename_on_clash:
                raise BenchError(f"Run directory {run_dir} already exists; runs are never overwritten.") from None
            run_dir, n = base.with_name(f"{base.name}-{n}"), n + 1
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with open(run_dir / "train_log.jsonl", "w") as fh:
        fh.writelines(json.dumps(record, default=_plain) + "\n" for record in log)
    (run_dir / "predictions").mkdir()
    for name, frame in predictions.items():
        frame.to_csv(run_dir / "predictions" / f"{name}.csv.gz", index=False, float_format="%.6g")
    if save_checkpoint is not None:
        save_checkpoint(run_dir)
    _atomic_write(run_dir / "results.json", json.dumps({**result, "run_id": run_dir.name}, indent=2,
                                                       default=_plain) + "\n")
    return run_dir


def read_results(run_dir: Path) -> dict[str, Any]:
    """Load ``results.json`` of a run directory, with a clear error for unfinished or foreign dirs."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise BenchError(f"{run_dir} has no results.json; it is not a finished run directory.")
    data = json.loads(path.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BenchError(f"{path} has schema_version {data.get('schema_version')!r}; this bench reads "
                         f"version {SCHEMA_VERSION}.")
    return data


def command_line() -> str:
    """The command as typed, for provenance."""
    prog = Path(sys.argv[0]).name
    prog = "bench" if prog in ("bench", "__main__.py", "-m") else prog
    return " ".join([prog, *sys.argv[1:]])


def portable_command(command: str) -> str:
    """Drop machine-specific path options (--out, --data-root) from a recorded command.

    Where a run wrote its files and where its data lives do not change its numbers, and committed
    result files must not carry one machine's paths.
    """
    words, out, skip = command.split(), [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--out", "--data-root"):
            skip = True
            continue
        if word.startswith(("--out=", "--data-root=")):
            continue
        out.append(word)
    return " ".join(out)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
