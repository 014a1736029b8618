"""Executors: the small seam between a grid and what runs its cells (submitit's SLURM or local executor).

An executor submits :class:`~bench.grid.task.CellTask` callables and answers, from its own checks,
which of its jobs are still queued or running; it never relies on submitit's job state (without
SLURM accounting that state is UNKNOWN, and ``result()`` blocks forever for a cancelled job). Another
backend (Ray, Kubernetes) is one more class with the same four methods, added to :data:`EXECUTORS`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from bench.grid.manifest import GridDir
from bench.grid.spec import ExecutorSettings, GridError

#: The local executor's time limit when none is given: cells are not stopped (30 days).
LOCAL_UNLIMITED_MIN = 30 * 24 * 60
#: SLURM's time limit per cell when none is given (minutes); longer cells are requeued and resume.
SLURM_DEFAULT_MIN = 60
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "STOPPED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}


class Executor(Protocol):
    """What a grid needs of an executor."""

    kind: str

    def check(self) -> None:
        """Refuse at once, in one sentence, when this executor cannot run here (before any directory is made)."""

    def submit(self, tasks: list[Any]) -> list[dict[str, Any]]:
        """Submit every task at once (all or none); one record per task: ``job_id``, ``submitit_log``."""

    def active(self, job_ids: Iterable[str]) -> dict[str, str]:
        """``queued`` or ``running`` for each job id still alive; ended ones are absent."""

    def cancel(self, jobs: list[dict[str, Any]]) -> None:
        """Stop these jobs (records of ``jobs.jsonl``) now."""

    def follow_hint(self) -> str:
        """How a user sees the jobs with the executor's own tools."""


def make_executor(settings: ExecutorSettings, gdir: GridDir, job_name: str) -> Executor:
    """The executor named by ``settings.kind``."""
    return EXECUTORS[settings.kind](settings, gdir, job_name)


class SlurmCells:
    """Cells as SLURM jobs (one job array per submission) through ``submitit.AutoExecutor``."""

    kind = "slurm"

    def __init__(self, settings: ExecutorSettings, gdir: GridDir, job_name: str):
        self.settings, self.gdir, self.job_name = settings, gdir, job_name

    def _tool(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise GridError(f"--executor slurm needs SLURM's `{name}`, which is not on this machine's PATH; run "
                            "from a cluster login node, or use --executor local.")
        return path

    def check(self) -> None:
        self._tool("sbatch")

    def submit(self, tasks: list[Any]) -> list[dict[str, Any]]:
        import submitit
        from submitit.core.utils import FailedJobError

        self.check()
        s = self.settings
        executor = submitit.AutoExecutor(folder=self.gdir.submitit / "%j", cluster="slurm",
                                         slurm_max_num_timeout=s.max_requeues)
        params: dict[str, Any] = {"name": self.job_name, "timeout_min": s.time_limit_min or SLURM_DEFAULT_MIN,
                                  "nodes": s.nodes_per_cell, "tasks_per_node": 1, "stderr_to_stdout": True,
                                  "slurm_signal_delay_s": s.signal_delay_s}
        optional = {"cpus_per_task": s.cpus_per_cell, "mem_gb": s.mem_gb, "gpus_per_node": s.gpus_per_cell or None,
                    "slurm_partition": s.partition, "slurm_account": s.account, "slurm_qos": s.qos,
                    "slurm_constraint": s.constraint, "slurm_array_parallelism": s.max_concurrent,
                    "slurm_additional_parameters": dict(s.sbatch) or None}
        executor.update_parameters(**params, **{k: v for k, v in optional.items() if v is not None})
        try:  # submitit echoes sbatch's errors on stderr; they are in the one sentence below instead
            with contextlib.redirect_stderr(io.StringIO()), executor.batch():
                jobs = [executor.submit(task) for task in tasks]
        except FailedJobError as err:
            raise GridError(f"SLURM refused the grid's jobs ({sbatch_reason(str(err))}); nothing was submitted, "
                            "so change the executor settings and run the command again.") from None
        return [{"job_id": str(job.job_id), "submitit_log": str(job.paths.stdout)} for job in jobs]

    def active(self, job_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(job_ids)
        if not wanted:
            return {}
        done = subprocess.run([self._tool("squeue"), "-h", "-r", f"--name={self.job_name}", "-o", "%i|%T"],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise GridError(f"squeue failed ({done.stderr.strip() or done.returncode}); is SLURM up here?")
        states = {}
        for line in done.stdout.splitlines():
            job_id, _, state = line.strip().partition("|")
            if job_id in wanted and state in _QUEUED | _RUNNING:
                states[job_id] = "queued" if state in _QUEUED else "running"
        return states

    def cancel(self, jobs: list[dict[str, Any]]) -> None:
        if jobs:
            subprocess.run([self._tool("scancel"), *[j["job_id"] for j in jobs]], capture_output=True, text=True,
                           timeout=60, check=False)

    def follow_hint(self) -> str:
        return f"`squeue --name={self.job_name}` or `scancel --name={self.job_name}`"


def sbatch_reason(stderr: str) -> str:
    """SLURM's own words from sbatch's stderr: the 'submission failed' reason first, then the other errors."""
    errors = [line.split("error:", 1)[1].strip() for line in stderr.splitlines() if "error:" in line]
    errors += [line.strip() for line in stderr.splitlines() if "unrecognized option" in line]
    failed = [e.split("failed:", 1)[1].strip() for e in errors if "submission failed:" in e]
    rest = [e for e in errors if "submission failed:" not in e]
    words = list(dict.fromkeys(failed + rest)) or [stderr.strip().splitlines()[-1] if stderr.strip() else "no reason"]
    return "; ".join(words)


def _detached_local_executor(folder: Path, max_num_timeout: int):
    """submitit's LocalExecutor, except that each job's controller starts in its own session.

    submitit starts the controller in the submitter's process group (so Ctrl-C on ``bench grid``
    would kill the cells), on the submitter's stdout, and with ``CUDA_VISIBLE_DEVICES=""`` when no
    GPU is requested (hiding every GPU). Here it is started the way submitit starts it, with the
    same environment protocol, but detached, logging to a file, and leaving the GPUs visible.
    """
    import submitit
    from submitit.local.local import LocalJob

    class Detached(submitit.LocalExecutor):
        def _submit_command(self, command: str) -> LocalJob:
            env = {**os.environ, "SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_COMMAND": command,
                   "SUBMITIT_LOCAL_TIMEOUT_S": str(int(60 * self.parameters["timeout_min"])),
                   "SUBMITIT_LOCAL_SIGNAL_DELAY_S": str(int(self.parameters["signal_delay_s"])),
                   "SUBMITIT_LOCAL_NODEID": "0", "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
                   "SUBMITIT_STDERR_TO_STDOUT": "1", "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_WITH_SHELL": ""}
            with open(Path(str(self.folder)).parent / "controllers.log", "a") as out:
                process = subprocess.Popen([sys.executable, "-m", "submitit.local._local", str(self.folder)],
                                           env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=subprocess.STDOUT)
            return LocalJob(folder=self.folder, job_id=str(process.pid), process=process, tasks=[0])

    return Detached(folder=folder, max_num_timeout=max_num_timeout)


class LocalCells:
    """Cells as processes on this machine through submitit's LocalExecutor (one controller per cell)."""

    kind = "local"

    def __init__(self, settings: ExecutorSettings, gdir: GridDir, job_name: str):
        self.settings, self.gdir, self.job_name = settings, gdir, job_name
        self._processes: dict[str, subprocess.Popen] = {}

    def check(self) -> None:
        return None

    def submit(self, tasks: list[Any]) -> list[dict[str, Any]]:
        s = self.settings
        self.gdir.submitit.mkdir(parents=True, exist_ok=True)
        executor = _detached_local_executor(self.gdir.submitit / "%j", s.max_requeues)
        executor.update_parameters(timeout_min=s.time_limit_min or LOCAL_UNLIMITED_MIN,
                                   signal_delay_s=s.signal_delay_s)
        records = []
        for task in tasks:
            job = executor.submit(task)
            self._processes[str(job.job_id)] = job._process
            records.append({"job_id": str(job.job_id), "submitit_log": str(job.paths.stdout)})
        return records

    def _alive(self, job_id: str) -> bool:
        process = self._processes.get(job_id)
        if process is not None:  # started by this command: poll() also reaps it
            return process.poll() is None
        try:
            cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return False
        return "submitit.local._local" in cmdline and str(self.gdir.submitit) in cmdline

    def active(self, job_ids: Iterable[str]) -> dict[str, str]:
        return {j: "running" for j in job_ids if self._alive(j)}

    def cancel(self, jobs: list[dict[str, Any]]) -> None:
        for job in jobs:
            if not self._alive(job["job_id"]):
                continue
            controller = int(job["job_id"])
            groups = [controller]
            pid_file = self.gdir.pid_file(job["cell"])
            child = int(pid_file.read_text().strip()) if pid_file.is_file() else None
            if child is not None and _session(child) == controller:  # never a reused id of another session
                groups.insert(0, child)
            for group in groups:  # the cell's bench run (its own group), then the controller's session
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            process = self._processes.get(job["job_id"])
            if process is not None:
                process.wait()

    def follow_hint(self) -> str:
        return "`bench grid status DIR` (each cell is a process on this machine)"


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


EXECUTORS: dict[str, type] = {"local": LocalCells, "slurm": SlurmCells}
