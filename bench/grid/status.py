"""The state of every cell, from the grid's own checks (never from submitit's job state alone).

In order: a run directory with ``results.json`` and no ``INCOMPLETE`` marker is **done**; a cell
whose latest job the executor still lists is **queued** or **running**; a cell whose latest job
ended while its bench run exited with an error is **failed** (the reason is the ``error:`` line of
its log); a cell whose job ended any other way (``scancel``, a time limit without requeue, a lost
node) is **interrupted** and resumes from its saved state when the grid is issued again; a cell
never submitted is **pending**.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.grid.executors import make_executor
from bench.grid.manifest import GridDir
from bench.grid.spec import ExecutorSettings
from bench.grid.task import failure_reason

STATES = ("pending", "queued", "running", "done", "failed", "interrupted")
ACTIVE = ("queued", "running")


@dataclass
class CellStatus:
    """One cell's state, its latest job, why it failed, and how many of its attempts failed."""

    cell: str
    state: str
    job_id: str | None = None
    executor: str | None = None
    reason: str = ""
    failures: int = 0
    #: Whether the cell's latest job is still queued or running (a done cell's job may still be ending).
    alive: bool = False

    def line(self, width: int = 0) -> str:
        """``<cell>  <state>  <executor> job <id>  <reason>`` (the cell padded to ``width``), for ``bench grid status``."""
        job = f"{self.executor} job {self.job_id}" if self.job_id else ""
        return "  ".join(p for p in (f"{self.cell:<{width}}", f"{self.state:<11}", job, self.reason) if p).rstrip()


def finished(run_dir: Path) -> bool:
    """A finished bench run: ``results.json`` and no ``INCOMPLETE`` marker."""
    return (run_dir / "results.json").is_file() and not (run_dir / "INCOMPLETE").exists()


def cell_states(gdir: GridDir, executors: dict[str, Any] | None = None) -> list[CellStatus]:
    """The state of every cell of the grid in ``gdir``, in the manifest's order.

    ``executors`` (kind → executor) lets a waiting command reuse the executors that submitted the
    jobs; others are made from the manifest's settings.
    """
    manifest = gdir.manifest()
    jobs = gdir.jobs()
    executors = dict(executors or {})
    latest = {cell: records[-1] for cell, records in jobs.items()}
    alive: dict[str, str] = {}
    for kind in sorted({r["executor"] for r in latest.values()}):
        if kind not in executors:
            settings = ExecutorSettings(**{**manifest["executor"], "kind": kind})
            executors[kind] = make_executor(settings, gdir, manifest["job_name"])
        alive.update(executors[kind].active([r["job_id"] for r in latest.values() if r["executor"] == kind]))
    out = []
    for cell in manifest["cells"]:
        cid = cell["id"]
        job = latest.get(cid)
        exits = gdir.exit_records(cid)
        failures = sum(1 for e in exits if e["code"] != 0)
        status = CellStatus(cid, "pending", job and job["job_id"], job and job["executor"], failures=failures,
                            alive=job is not None and job["job_id"] in alive)
        if finished(gdir.run_dir(cid)):
            status.state = "done"
        elif job is not None and job["job_id"] in alive:
            status.state = alive[job["job_id"]]
        elif job is not None:
            last = exits[-1] if exits else None
            if last is not None and last["code"] != 0 and last.get("ended", 0) >= job.get("submitted_unix", 0):
                status.state, status.reason = "failed", failure_reason(gdir.log(cid), last["code"])
            else:
                status.state, status.reason = "interrupted", _interruption(gdir.log(cid))
        out.append(status)
    return out


def lines(states: list[CellStatus]) -> list[str]:
    """One aligned line per cell."""
    width = max((len(s.cell) for s in states), default=0)
    return [s.line(width) for s in states]


def _interruption(log: Path) -> str:
    """Why a cell's job ended without a result or an error: a requeue that never came, or something else."""
    try:
        last = log.read_text(encoding="utf-8", errors="replace").rsplit("\n== ", 1)[-1]
    except OSError:
        last = ""
    if "stopped for a requeue" in last.split("\n", 1)[0]:
        return ("stopped at its time limit (or preempted) and not restarted: --max-requeues used up, or the job was "
                "cancelled meanwhile; the next `bench grid` resumes it (raise --time-limit or --max-requeues)")
    return "its job ended before the run finished (cancelled, killed or lost); the next `bench grid` resumes it"


def totals(states: list[CellStatus]) -> str:
    """``4 cells: 2 done, 1 running, 1 failed``."""
    counts = Counter(s.state for s in states)
    parts = [f"{counts[s]} {s}" for s in STATES if counts[s]]
    return f"{len(states)} cells: " + ", ".join(parts)
