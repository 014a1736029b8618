"""What ``--resume`` must find unchanged, and the lock that keeps one writer per run directory.

When a run starts, ``config.yaml`` records a *resume guard*: the protocol's hash, a hash of the
settings (every recorded argument that changes numbers, plus the resolved detector config), the
content fingerprint of every split (:mod:`bench.data.identity`) and the code (:func:`code_version`:
the decoding rules' ``DECODE_VERSION``, the package version and a hash of the Python source of
``bench`` and ``detectors``; a shared block or the runner can change without a detector version, and a
commit that changes no code, such as docs or results, must not block a resume or a SLURM requeue).
``bench run --resume`` computes the same from what it finds and refuses any difference, in one sentence naming what changed: an edited
image, protocol file or ``config.yaml`` would otherwise give a result that is neither the old run
nor a new one. Only ``--workers``, ``--threads`` and ``--data-root`` may change (they do not change
numbers; the data fingerprint is relative to the data root).

:class:`RunLock` is an exclusive ``flock`` on ``<run_dir>/.lock`` held for the whole run: a second
``--resume`` of the same directory (or a resume of a run still going) is refused. The kernel drops
the lock when the process ends, however it ends, so a crashed run never leaves it held.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from bench.errors import BenchError

#: Key of the guard in ``config.yaml``.
GUARD = "resume_guard"
#: Lock file inside a run directory (removed when the run finishes).
LOCK_FILE = ".lock"
#: Recorded arguments that may change on resume: where the data lives and how many cores are used.
_FREE = {"data_root"}
_FREE_RUNNER = {"workers", "threads"}


def settings_sha256(arguments: dict[str, Any], detector_config_sha256: str) -> str:
    """Hash of everything recorded that changes numbers: the arguments but data root, workers and threads."""
    kept = {k: v for k, v in arguments.items() if k not in _FREE}
    kept["runner"] = {k: v for k, v in (arguments.get("runner") or {}).items() if k not in _FREE_RUNNER}
    blob = json.dumps({"arguments": kept, "detector": detector_config_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


#: The code a run's numbers depend on, as :func:`code_version` records it, and how a refusal names each.
_CODE = {"decode_version": "the image decoding rules (DECODE_VERSION)", "bench": "the forgery-bench version",
         "source": "the Python source of bench/ and detectors/ (sha256)"}


def code_version() -> dict[str, Any]:
    """The code that computes a run: decoding rules, package version and :func:`source_sha256`."""
    from importlib import metadata

    from bench.data.decode import DECODE_VERSION

    try:
        version = metadata.version("forgery-bench")
    except metadata.PackageNotFoundError:
        version = None
    return {"decode_version": DECODE_VERSION, "bench": version, "source": source_sha256()}


def source_sha256() -> str:
    """sha256 over every ``.py`` file (relative path and bytes) of the ``bench`` and ``detectors`` packages.

    Committed or not, any edit to the code is seen; nothing else (docs, results, git history) is.
    ``detectors`` is located, not imported: the core never imports a detector.
    """
    import importlib.util

    digest = hashlib.sha256()
    for name in ("bench", "detectors"):
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            root = Path(location)
            for path in sorted(root.rglob("*.py")):
                digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def guard(protocol_sha256: str, settings: str, data: dict[str, str]) -> dict[str, Any]:
    """The guard recorded at the start: protocol hash, settings hash, data fingerprints by split, the code."""
    return {"protocol_sha256": protocol_sha256, "settings_sha256": settings, "data": dict(data),
            "code": code_version()}


def check_unchanged(run_dir: Path, recorded: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """Refuse a resume when the protocol, the settings or any split's images differ from the start."""
    fix = "restore it, or start a new run (a resumed run must be the run that was started)"
    if not recorded:
        raise BenchError(f"{run_dir}/config.yaml has no {GUARD} (the run was started by an older bench), so "
                         "nothing says whether its data, protocol and settings are unchanged; start a new run.")
    if recorded.get("protocol_sha256") != now["protocol_sha256"]:
        raise BenchError(f"The protocol of {run_dir} changed since the run started (hash "
                         f"{str(recorded.get('protocol_sha256'))[:12]} then, {now['protocol_sha256'][:12]} now); "
                         f"{fix}.")
    then_code = recorded.get("code")
    if not isinstance(then_code, dict):
        raise BenchError(f"{run_dir}/config.yaml records no code version in its {GUARD} (the run was started by an "
                         "older bench), so nothing says this code computes what the started run did; start a new run.")
    for key, what in _CODE.items():
        if then_code.get(key) != now["code"].get(key):
            raise BenchError(f"The code changed since {run_dir} started ({what}: {then_code.get(key)} then, "
                             f"{now['code'].get(key)} now); resume it with the code that started it, or start a "
                             "new run (a resumed run must be computed by one code).")
    if recorded.get("settings_sha256") != now["settings_sha256"]:
        raise BenchError(f"The settings of {run_dir} differ from those it started with (its config.yaml was "
                         "edited, or this bench resolves the detector's settings differently); "
                         f"{fix}.")
    then, here = recorded.get("data") or {}, now["data"]
    for name in sorted(set(then) | set(here)):
        if then.get(name) != here.get(name):
            raise BenchError(f"The images of split {name!r} changed since {run_dir} started (fingerprint of paths, "
                             "sizes and modification times differs); restore them, or start a new run (a "
                             "resumed run must see the data it started with).")


class RunLock:
    """An exclusive lock on a run directory, held from its start (or resume) to its end."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fh = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise BenchError naming the holder when another run has it."""
        fh = open(self.path, "a+")  # noqa: SIM115 (held open for the run: the lock lives with the descriptor)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise BenchError(f"{self.path.parent} is being written by another bench run ({holder}); wait for it to "
                             "end (two runs writing one directory would mix their results).") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Drop the lock (the kernel also drops it when the process ends)."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
