"""What a grid job runs: one cell's ``bench run`` in a child process, and submitit's checkpoint protocol.

The job (a submitit task, on a SLURM node or under submitit's local controller) decides from the
cell's run directory what to do: nothing when it is finished, ``bench run --resume`` when it was
interrupted, a fresh ``bench run`` otherwise. When SLURM (or the local controller) signals the job
before its time limit or on preemption, submitit calls :meth:`CellTask.checkpoint`, which stops the
child as Ctrl-C would (its state was saved after its last finished epoch) and returns the same task;
submitit requeues it and the next attempt resumes the run. The child ignores SIGUSR2 and SIGTERM,
which SLURM sends to every process of a job, so only this task decides when it stops.

This module is imported inside every job: it imports nothing heavy (no torch).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: How long a stopped child may take to exit (it stops between two batches) before it is killed.
GRACE_S = 30
_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)|KeyboardInterrupt)\b.*")


class CellFailed(RuntimeError):
    """The cell's bench run ended with an error; the message is its reason."""


def _child_signals() -> None:
    # Runs in the child between fork and exec: dispositions set to "ignore" survive exec.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _rank() -> int:
    return int(os.environ.get("SLURM_PROCID", "0"))


def failure_reason(log: Path, code: int | None = None) -> str:
    """The one-sentence reason of the last attempt's failure: bench's ``error:`` line, else the exception line."""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    attempt = text.rsplit("\n== ", 1)[-1]
    lines = [line.strip() for line in attempt.replace("\r", "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    for line in reversed(lines):
        if _ERROR.match(line):
            return line
    return f"bench run exited with code {code} and printed no error; see {log}"


def _reaped(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for child ``pid`` to exit, reaping it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            return True
        time.sleep(0.1)
    return False


class CellTask:
    """The callable submitted for one cell (picklable; see the module docstring)."""

    def __init__(self, cell_id: str, run_dir: str, log: str, exits: str, pid_file: str, fresh: list[str],
                 resume: list[str], processes: int = 1, nodes: int = 1, precision: str | None = None):
        self.cell_id, self.run_dir, self.log, self.exits, self.pid_file = cell_id, run_dir, log, exits, pid_file
        self.fresh, self.resume = fresh, resume
        self.processes, self.nodes, self.precision = processes, nodes, precision
        self._proc: subprocess.Popen | None = None
        self._note = ""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_proc", "_note")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _proc=None, _note="")

    def arguments(self) -> list[str] | None:
        """The ``bench`` arguments for this attempt, or None when the run is finished.

        A run directory with neither ``results.json`` nor a resumable record (a run killed while it
        was being made) is renamed ``<name>.interrupted`` (never deleted) and the cell starts afresh.
        """
        run_dir = Path(self.run_dir)
        incomplete = (run_dir / "INCOMPLETE").exists()
        if (run_dir / "results.json").is_file() and not incomplete:
            return None
        if incomplete and (run_dir / "config.yaml").is_file():
            return self.resume
        if run_dir.exists() and _rank() == 0:  # made but never configured: keep it aside, never delete
            target, k = run_dir.with_name(run_dir.name + ".interrupted"), 2
            while target.exists():
                target, k = run_dir.with_name(f"{run_dir.name}.interrupted-{k}"), k + 1
            run_dir.rename(target)
            self._note = f"moved {run_dir} aside to {target.name}: it had no results.json and nothing to resume\n"
        return self.fresh

    def __call__(self) -> str:
        from bench.grid.launch import free_port, launcher

        args = self.arguments()
        if args is None:
            return self.run_dir
        env = dict(os.environ)
        if self.processes * self.nodes > 1 and "SLURM_JOB_ID" not in env:
            env.setdefault("MASTER_PORT", free_port())
        argv = [sys.executable, *launcher(env, self.processes, self.nodes, self.precision), *args]
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", "?")
        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        started = time.time()
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')} job {job} restart {restart} rank {_rank()}: "
                      f"{' '.join(argv)}\n{self._note}")
            log.flush()
            # preexec_fn is safe here: a submitit task process runs no other thread.
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                          process_group=0, preexec_fn=_child_signals)  # noqa: PLW1509
            Path(self.pid_file).write_text(str(self._proc.pid))
            code = self._proc.wait()  # SIGUSR2 lands here: submitit runs checkpoint(), requeues and exits
        self._proc = None
        if _rank() == 0:
            with open(self.exits, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"code": code, "job_id": job, "restart": int(restart), "started": started,
                                     "ended": time.time()}) + "\n")
        if code != 0:
            raise CellFailed(f"{self.cell_id}: {failure_reason(Path(self.log), code)}")
        return self.run_dir

    def stop_child(self) -> None:
        """Stop the running bench run as Ctrl-C would (its process group), killing it after :data:`GRACE_S`.

        Called from submitit's signal handler while ``__call__`` is inside ``Popen.wait``, which holds
        the Popen's wait lock: so the child is reaped here with ``os.waitpid``, never ``Popen.wait``.
        """
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        for sig, patience in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            if _reaped(proc.pid, patience):
                return

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's hook on SIGUSR2 (time limit near, or preemption): stop the child, requeue this task."""
        from submitit.helpers import DelayedSubmission

        self.stop_child()
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')} stopped for a requeue (time limit or "
                      "preemption); the next attempt resumes from the last saved epoch\n")
        return DelayedSubmission(CellTask(**{k: v for k, v in self.__getstate__().items()}))
