"""Run directories: ``config.yaml``, ``train_log.jsonl``, ``predictions/<test>.csv.gz`` and ``results.json``.

A run directory is made when the run starts (so an unwritable ``--out`` fails before any work),
with ``config.yaml`` and an ``INCOMPLETE`` marker; training state goes to ``state/`` after every
epoch. When the run ends, predictions, the checkpoint and ``results.json`` (atomically) are
written, then the marker and the state are removed: a finished run has ``results.json`` and no
marker. An interrupted one keeps its marker (``bench run --resume DIR`` continues it) and is never
taken for a finished run. An existing run directory is never overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.errors import BenchError
from bench.inputs import check_component, read_yaml
from bench.run.files import RESUME_HINT, make_dir, write_file
from bench.run.provenance import git_state
from bench.run.resume import LOCK_FILE

SCHEMA_VERSION = 3
#: Schema versions this bench can read (2 added origin, provenance and data-handling records; 3 added
#: ``predictions_sha256``, the validation threshold, the deployment metrics, ``cost``, distinct group
#: counts and val predictions, which results of versions 1 and 2 lack).
READABLE_SCHEMAS = (1, 2, 3)
#: First schema whose results.json records the hash of each predictions file.
PREDICTIONS_HASH_SCHEMA = 3
#: The selected weights' scores on the source validation split (schema 3), beside ``predictions/``.
VAL_PREDICTIONS = "val_predictions.csv.gz"
INCOMPLETE = "INCOMPLETE"
PREDICTION_COLUMNS = {
    "index": "row of the test set's table (0..n-1)", "source": "protocol source the row comes from",
    "id": "the image's id in its source (a relative path for files)", "subset": "generator or sub-dataset",
    "group": "video id for frame datasets (= id for still images)", "label": "0 real, 1 fake",
    "score": "the detector's logit: > 0 means fake; sigmoid(score) = P(fake); empty for skipped images",
    "test_set": "the protocol's test-set name", "seed": "training seed of the run", "run_id": "the run directory's name",
}
_PACKAGES = ["forgery-bench", "torch", "torchvision", "timm", "open_clip_torch", "accelerate", "scikit-learn", "numpy"]


def now_iso() -> str:
    """Current UTC time, ISO 8601, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def environment(device: str, num_processes: int, precision: str) -> dict[str, Any]:
    """Library versions, git state, hardware, math backends and launch of this run."""
    from bench.run.provenance import cpu_info, launch_command, math_backends

    sha, dirty = git_state()
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"bench": versions.pop("forgery-bench"), "git_sha": sha, "git_dirty": dirty,
            "python": platform.python_version(), **versions, "platform": platform.platform(),
            "device": device, "num_processes": num_processes, "world_size": num_processes,
            "mixed_precision": precision, "cpu": cpu_info(), "math": math_backends(), "launch": launch_command()}


def new_run_dir(out_dir: Path, protocol: str, detector: str, seed: int, name: str | None = None) -> Path:
    """The path of a new run directory; an explicit ``name`` that exists already is an error.

    Protocol, detector and run names are single path components (:func:`bench.inputs.check_component`),
    so the directory always lies inside ``out_dir``.
    """
    check_component(protocol, "Protocol name", "rename the protocol")
    check_component(detector, "Detector name", "register the detector under another name")
    if name is not None:
        check_component(name, "--run-name", "choose another --run-name")
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


def open_run_dir(run_dir: Path, config: dict[str, Any], rename_on_clash: bool = False) -> Path:
    """Create ``run_dir`` now, with ``config.yaml`` and the ``INCOMPLETE`` marker; return the directory made.

    With ``rename_on_clash`` (automatic names), a directory made meanwhile by a run that started in
    the same second gets this run a ``-<n>`` suffix instead of failing.
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
        except OSError as err:
            raise BenchError(f"Run directory {run_dir} cannot be created ({err.strerror or err}); choose a "
                             f"writable --out.") from None
    try:
        write_file(run_dir / INCOMPLETE, f"started {now_iso()}; resume with `bench run --resume {run_dir}`\n",
                   "free space there or choose another --out (no run was started)")
        write_file(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False),
                   "free space there or choose another --out (no run was started)")
    except BenchError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def resumable_run_dir(run_dir: Path) -> dict[str, Any]:
    """The ``config.yaml`` of an interrupted run (``--resume``); a clear error for anything else."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise BenchError(f"{run_dir} is not a run directory (no config.yaml); pass the directory of an "
                         f"interrupted `bench run`.")
    if not (run_dir / INCOMPLETE).exists():
        raise BenchError(f"{run_dir} is a finished run (it has results.json and no {INCOMPLETE} marker); "
                         f"there is nothing to resume.")
    config = read_yaml(run_dir / "config.yaml", "Run config")
    if not isinstance(config, dict) or not isinstance(config.get("arguments"), dict):
        raise BenchError(f"{run_dir}/config.yaml has no `arguments` mapping; it was not written by `bench run`, "
                         "so start a new run.")
    return config


def finish_run(run_dir: Path, result: dict[str, Any], log: list[dict[str, Any]],
               predictions: dict[str, pd.DataFrame], save_checkpoint: Callable[[Path], Any] | None = None,
               val_predictions: pd.DataFrame | None = None) -> Path:
    """Write the log, predictions, checkpoint and (last, atomically) results.json; unmark the run.

    ``save_checkpoint(run_dir)`` writes the trained weights before results.json marks the run finished;
    ``val_predictions`` (the scores the validation threshold was chosen on) go to :data:`VAL_PREDICTIONS`.
    ``result["predictions_sha256"]`` gets, per test set, the sha256 of its predictions file's CSV
    text (the bytes inside the gzip), so a submitted file can be checked against the run. A write
    that fails (disk full, ...) is one :class:`bench.run.files.DiskError`; the run stays INCOMPLETE.
    """
    run_dir = Path(run_dir)
    hint = RESUME_HINT.format(run_dir=run_dir)
    write_file(run_dir / "train_log.jsonl", "".join(json.dumps(r, default=_plain) + "\n" for r in log), hint)
    folder = make_dir(run_dir / "predictions", hint)
    hashes = {}
    for name, frame in predictions.items():
        frame = frame.assign(test_set=name, seed=result["seed"], run_id=run_dir.name)
        text = frame.to_csv(index=False, float_format="%.6g").encode("utf-8")
        hashes[name] = hashlib.sha256(text).hexdigest()
        write_file(folder / f"{name}.csv.gz", gzip.compress(text, compresslevel=6, mtime=0), hint)
    write_file(folder / "columns.json", json.dumps(PREDICTION_COLUMNS, indent=2) + "\n", hint)
    if val_predictions is not None:
        text = val_predictions.assign(seed=result["seed"], run_id=run_dir.name).to_csv(index=False, float_format="%.6g")
        write_file(run_dir / VAL_PREDICTIONS, gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0), hint)
    if save_checkpoint is not None:
        save_checkpoint(run_dir)
    result["predictions_sha256"] = hashes
    write_file(run_dir / "results.json", json.dumps({**result, "run_id": run_dir.name}, indent=2,
                                                    default=_plain) + "\n", hint)
    (run_dir / INCOMPLETE).unlink(missing_ok=True)
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "state", ignore_errors=True)
    return run_dir


def predictions_sha256(path: Path) -> str:
    """The sha256 of a predictions file's CSV text (what ``results.json`` records in ``predictions_sha256``)."""
    with gzip.open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def read_results(run_dir: Path) -> dict[str, Any]:
    """Load ``results.json`` of a run directory, with a clear error for unfinished or foreign dirs."""
    path = Path(run_dir) / "results.json"
    if (Path(run_dir) / INCOMPLETE).exists():
        raise BenchError(f"{run_dir} is an unfinished run (interrupted?); finish it with `bench run --resume "
                         f"{run_dir}` before using it.")
    if not path.is_file():
        raise BenchError(f"{run_dir} has no results.json; it is not a finished run directory.")
    data = json.loads(path.read_text())
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise BenchError(f"{path} has schema_version {data.get('schema_version')!r}; this bench reads "
                         f"versions {', '.join(map(str, READABLE_SCHEMAS))}.")
    return data


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
