"""Submit a grid and follow it: what ``bench grid`` does, and ``bench grid cancel``.

Issuing a grid is idempotent. Under the grid directory's lock, each cell's state is read
(:mod:`bench.grid.status`) and only these are submitted: pending cells, interrupted cells (their job
resumes the run from its saved state) and failed cells that failed at most ``retries`` times. A
queued, running or finished cell is never submitted again. The local executor runs at most
``max_concurrent`` cells at once (default 1): the waiting command submits the next when one ends.
SLURM gets every cell at once, as one job array throttled by ``max_concurrent``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.grid.executors import Executor, make_executor
from bench.grid.launch import resume_args, run_args
from bench.grid.manifest import GridDir, now_iso
from bench.grid.plan import Plan
from bench.grid.status import ACTIVE, CellStatus, cell_states, totals
from bench.grid.task import CellTask


@dataclass
class Outcome:
    """What one ``bench grid`` command did: the cells it submitted, and every cell's state at the end."""

    gdir: GridDir
    submitted: list[str] = field(default_factory=list)
    states: list[CellStatus] = field(default_factory=list)
    unsubmitted: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every cell is done."""
        return all(s.state == "done" for s in self.states)


def job_name(plan: Plan) -> str:
    """The SLURM job name of a grid's jobs (how its jobs are found in ``squeue``)."""
    return f"bench-grid-{plan.hash[:10]}"


def task_for(plan: Plan, gdir: GridDir, cell_id: str) -> CellTask:
    """The submitted callable of one cell."""
    cell, run, ex = plan.cell(cell_id), plan.grid.run, plan.grid.executor
    threads = ex.cpus_per_cell if ex.kind == "slurm" else None
    return CellTask(cell_id, str(gdir.run_dir(cell_id)), str(gdir.log(cell_id)), str(gdir.exits(cell_id)),
                    str(gdir.pid_file(cell_id)), fresh=run_args(cell, run, gdir.runs, threads),
                    resume=resume_args(gdir.run_dir(cell_id), run, threads), processes=max(ex.gpus_per_cell, 1),
                    nodes=ex.nodes_per_cell, precision=run.precision)


def to_submit(states: list[CellStatus], retries: int, interrupted: bool = True) -> list[str]:
    """Cells to submit now: pending ones, failed ones with retries left, and (when the grid is issued,
    not while it is followed, so a `scancel` sticks) interrupted ones, in grid order."""
    again = ("pending", "interrupted") if interrupted else ("pending",)
    return [s.cell for s in states if s.state in again or (s.state == "failed" and s.failures <= retries)]


@contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C while jobs are submitted and recorded, so no submitted job goes unrecorded."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets SIGINT
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _submit(plan: Plan, gdir: GridDir, executor: Executor, limit: int | None,
            interrupted: bool = True) -> tuple[list[str], list[str]]:
    """Under the grid's lock: submit what :func:`to_submit` picks (at most ``limit`` active cells in all)."""
    with gdir.lock():
        states = cell_states(gdir, {executor.kind: executor})
        wanted = to_submit(states, plan.grid.executor.retries, interrupted)
        room = len(wanted) if limit is None else max(0, limit - sum(s.alive for s in states))
        chosen, held = wanted[:room], wanted[room:]
        if chosen:
            with _deferred_interrupt():
                records = executor.submit([task_for(plan, gdir, c) for c in chosen])
                gdir.record_jobs([{"cell": c, "executor": executor.kind, **r, "submitted_at": now_iso(),
                                   "submitted_unix": time.time()} for c, r in zip(chosen, records)])
    return chosen, held


def issue(plan: Plan, gdir: GridDir, wait: bool = True, say: Callable[[str], None] | None = None,
          poll_s: float = 1.0, progress: bool = True) -> Outcome:
    """Submit what the grid needs and, with ``wait``, follow it until no cell is queued or running.

    A progress bar over cells goes to stderr (unless ``progress`` is False). Ctrl-C while waiting
    leaves the jobs running and raises ``KeyboardInterrupt`` (the CLI says how to see and cancel them).
    """
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    ex = plan.grid.executor
    executor = make_executor(ex, gdir, job_name(plan))
    limit = (ex.max_concurrent or 1) if ex.kind == "local" else None
    executor.check()
    gdir.adopt(plan, ex, job_name(plan))
    outcome = Outcome(gdir)
    chosen, held = _submit(plan, gdir, executor, limit)
    outcome.submitted += chosen
    if chosen:
        say(f"grid {gdir.root}: submitted {len(chosen)} cell(s) to the {ex.kind} executor"
            + (f" ({len(held)} more once running ones end)" if held else ""))
    if not wait:
        outcome.states, outcome.unsubmitted = cell_states(gdir, {ex.kind: executor}), held
        return outcome
    outcome.states = _follow(plan, gdir, executor, limit, outcome, poll_s, progress)
    return outcome


def _follow(plan: Plan, gdir: GridDir, executor: Executor, limit: int | None, outcome: Outcome,
            poll_s: float, progress: bool) -> list[CellStatus]:
    from tqdm import tqdm

    cap = 2.0 if executor.kind == "local" else 10.0  # squeue is a cluster-wide service: ask it less often
    delay = poll_s
    with tqdm(total=len(plan.cells), desc="cells", unit="cell", file=sys.stderr, disable=not progress) as bar:
        while True:
            states = cell_states(gdir, {executor.kind: executor})
            bar.n = sum(s.state in ("done", "failed", "interrupted") for s in states)
            bar.set_postfix_str(totals(states).split(": ", 1)[1])
            wanted = to_submit(states, plan.grid.executor.retries, interrupted=False)
            if wanted and (limit is None or sum(s.alive for s in states) < limit):
                chosen, _ = _submit(plan, gdir, executor, limit, interrupted=False)
                outcome.submitted += chosen
                delay = poll_s
                continue
            if not any(s.state in ACTIVE for s in states) and not wanted:  # done cells' jobs may still be ending
                return states
            time.sleep(delay)
            delay = min(cap, delay * 1.5)


def cancel(gdir: GridDir) -> list[str]:
    """Cancel every queued or running job of the grid; return the cells whose job was cancelled."""
    from bench.grid.spec import ExecutorSettings

    manifest = gdir.manifest()
    states = cell_states(gdir)
    latest = {cell: records[-1] for cell, records in gdir.jobs().items()}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for state in states:
        if state.state in ACTIVE:
            by_kind.setdefault(state.executor, []).append(latest[state.cell])
    for kind, jobs in by_kind.items():
        settings = ExecutorSettings(**{**manifest["executor"], "kind": kind})
        make_executor(settings, gdir, manifest["job_name"]).cancel(jobs)
    return [j["cell"] for jobs in by_kind.values() for j in jobs]
