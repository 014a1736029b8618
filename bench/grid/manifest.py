"""A grid directory: the manifest, the job records, one run directory and one log per cell.

Layout (every path in the manifest is relative to the grid directory)::

    manifest.json                   the grid's hash, definition, executor settings and expanded cells
    jobs.jsonl                      one line per submission: cell, executor, job id, submitit's log
    runs/<protocol>/<detector>/<name>/   the cell's ordinary bench run directory
    logs/<protocol>/<detector>/<name>.log         the cell's stdout and stderr, every attempt appended
    logs/<protocol>/<detector>/<name>.exits.jsonl how each attempt of bench run ended (written by the job)
    submitit/<job id>/              submitit's pickles and job logs
    .lock                           held while a command submits, so two never submit the same cell

The grid's hash covers what the cells compute (not where they run), so a directory made by another
grid definition is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.grid.spec import Cell, ExecutorSettings, GridError

MANIFEST, JOBS, SCHEMA = "manifest.json", "jobs.jsonl", 1


def now_iso() -> str:
    """Current UTC time, ISO 8601, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class GridDir:
    """Paths and records of one grid directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.runs = self.root / "runs"
        self.submitit = self.root / "submitit"

    def run_dir(self, cell_id: str) -> Path:
        """The cell's bench run directory."""
        return self.runs / cell_id

    def log(self, cell_id: str) -> Path:
        """The cell's combined stdout and stderr."""
        return self.root / "logs" / f"{cell_id}.log"

    def exits(self, cell_id: str) -> Path:
        """One JSON line per ended attempt of the cell's bench run (code, job, times)."""
        return self.root / "logs" / f"{cell_id}.exits.jsonl"

    def pid_file(self, cell_id: str) -> Path:
        """The process group of the cell's running bench run (local executor: how `cancel` reaches it)."""
        return self.root / "logs" / f"{cell_id}.pid"

    def exists(self) -> bool:
        """Whether a grid lives here."""
        return (self.root / MANIFEST).is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest, or a clear error when this is not a grid directory."""
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GridError(f"{self.root} is not a grid directory (no {MANIFEST}); pass the --out of a "
                            "`bench grid` command.") from None
        except (OSError, ValueError) as err:
            raise GridError(f"{path} is unreadable ({err}); the grid directory is damaged.") from None
        if data.get("schema") != SCHEMA:
            raise GridError(f"{path} has schema {data.get('schema')!r}; this bench reads schema {SCHEMA}.")
        return data

    def cells(self) -> list[dict[str, Any]]:
        """The manifest's cells: id, protocol, detector, seed, overrides, run_dir, log."""
        return self.manifest()["cells"]

    def check(self, plan) -> None:
        """Refuse a directory that holds another grid than ``plan``, or runs no manifest vouches for."""
        if not self.exists() and self.runs.is_dir() and any(self.runs.iterdir()):
            raise GridError(f"{self.root} holds run directories but no {MANIFEST} (made by an older `bench sweep`, or "
                            "by hand?), so nothing says which settings made them; pass another --out.")
        if self.exists():
            old = self.manifest()
            if old["hash"] != plan.hash:
                raise GridError(
                    f"{self.root} holds another grid ({old['hash'][:12]}, {len(old['cells'])} cells) than this one "
                    f"({plan.hash[:12]}, {len(plan.cells)} cells): {_difference(old, plan)}; pass another --out "
                    "for this grid.")

    def adopt(self, plan, executor: ExecutorSettings, job_name: str) -> None:
        """Write the manifest of ``plan`` here, after :meth:`check`; the executor settings are the latest used."""
        self.check(plan)
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"schema": SCHEMA, "hash": plan.hash, "job_name": job_name, "updated_at": now_iso(),
                "definition": plan.grid.model_dump(mode="json", exclude={"executor"}),
                "executor": executor.model_dump(mode="json"),
                "cells": [_cell_record(self, c, plan.resolved[c.id]) for c in plan.cells]}
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / MANIFEST)

    def record_jobs(self, records: list[dict[str, Any]]) -> None:
        """Append submitted jobs to ``jobs.jsonl`` (flushed before the command goes on)."""
        with open(self.root / JOBS, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
            fh.flush()
            os.fsync(fh.fileno())

    def jobs(self) -> dict[str, list[dict[str, Any]]]:
        """Every submission per cell id, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        path = self.root / JOBS
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    out.setdefault(record["cell"], []).append(record)
        return out

    def exit_records(self, cell_id: str) -> list[dict[str, Any]]:
        """How each attempt of the cell's bench run ended, oldest first."""
        path = self.exits(cell_id)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the grid's lock (an exclusive ``flock``) while submitting."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _cell_record(gdir: GridDir, cell: Cell, resolved: dict[str, Any]) -> dict[str, Any]:
    rel = os.path.relpath
    return {"id": cell.id, "protocol": cell.protocol, "protocol_name": cell.protocol_name,
            "detector": cell.detector, "seed": cell.seed, "overrides": cell.overrides, "name": cell.name,
            "run_dir": rel(gdir.run_dir(cell.id), gdir.root), "log": rel(gdir.log(cell.id), gdir.root), **resolved}


def _difference(old: dict[str, Any], plan) -> str:
    """What differs between a stored manifest and a plan, in a few words."""
    before = {c["id"]: c for c in old["cells"]}
    now = {c.id: c for c in plan.cells}
    gone, new = sorted(set(before) - set(now)), sorted(set(now) - set(before))
    if new:
        return f"this grid has cell {new[0]}, which that one has not"
    if gone:
        return f"that grid has cell {gone[0]}, which this one has not"
    for cell_id in now:
        for key, value in plan.resolved[cell_id].items():
            if before[cell_id].get(key) != value:
                return f"cell {cell_id} differs in its {key.replace('_', ' ')} (a changed detector or protocol)"
    return "the run settings that change numbers (batch size, precision, limit, ...) or processes per cell differ"
