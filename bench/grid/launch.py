"""The command line of a cell: an ordinary ``bench run``, under ``accelerate launch`` for several processes.

:func:`run_args` and :func:`resume_args` are the ``bench run`` arguments of a fresh and of a resumed
cell. :func:`accelerate_args` maps the SLURM allocation a cell runs in (its environment) to
Accelerate's launcher flags: one launcher per node, ``processes`` processes on each, the first node
of the allocation as the rendezvous. Pure functions of their arguments, so they are unit-tested
with a fabricated SLURM environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.grid.spec import Cell, RunSettings, value_text

#: Rendezvous ports are taken from this range, by job id, so two cells on one node do not collide.
PORT_BASE, PORT_SPAN = 20000, 40000


def run_args(cell: Cell, run: RunSettings, runs_dir: Path, threads: int | None = None) -> list[str]:
    """``bench run`` arguments of a fresh cell, writing ``runs_dir/<protocol>/<detector>/<name>``."""
    args = ["run", "--protocol", cell.protocol, "--detector", cell.detector, "--seeds", str(cell.seed),
            "--out", str(runs_dir), "--run-name", cell.name, "--batch-size", str(run.batch_size),
            "--decode", run.decode]
    for key, value in cell.overrides.items():
        args += ["-o", f"{key}={value_text(value)}"]
    for flag, value in (("--precision", run.precision), ("--limit", run.limit), ("--max-steps", run.max_steps)):
        if value is not None:
            args += [flag, str(value)]
    for flag, on in (("--no-cache", not run.cache), ("--check-images", run.check_images),
                     ("--skip-bad-images", run.skip_bad_images), ("--cpu", run.cpu)):
        if on:
            args.append(flag)
    return args + _machine_args(run, threads)


def resume_args(run_dir: Path, run: RunSettings, threads: int | None = None) -> list[str]:
    """``bench run --resume`` arguments: everything else comes from the run directory's record."""
    return ["run", "--resume", str(run_dir), *_machine_args(run, threads)]


def _machine_args(run: RunSettings, threads: int | None) -> list[str]:
    """Flags that may differ between a run and its resume: workers, threads, data root, plugins."""
    args = ["--workers", run.workers]
    if run.threads or threads:
        args += ["--threads", str(run.threads or threads)]
    if run.data_root:
        args += ["--data-root", run.data_root]
    for module in run.plugins:
        args += ["--plugin", module]
    return args


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (``node[01-04],gpu7`` → ``node01``), as submitit parses it."""
    from submitit.slurm.slurm import _parse_node_list

    hosts = _parse_node_list(nodelist)
    if not hosts:
        raise ValueError(f"empty SLURM node list {nodelist!r}")
    return hosts[0]


def accelerate_args(env: Mapping[str, str], processes: int, precision: str | None = None) -> list[str]:
    """``accelerate launch`` flags for this node of a SLURM allocation, ``processes`` processes per node.

    Reads ``SLURM_JOB_NODELIST`` (rendezvous host = its first node), ``SLURM_JOB_NUM_NODES`` (or
    ``SLURM_NNODES``), ``SLURM_NODEID`` (machine rank) and ``SLURM_JOB_ID`` (rendezvous port, unless
    ``MASTER_PORT`` is set). Outside SLURM (the local executor) it is one machine: no rendezvous
    host, and the port only when ``MASTER_PORT`` names one.
    """
    nodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    args = ["--multi_gpu", "--num_processes", str(processes * nodes), "--num_machines", str(nodes),
            "--mixed_precision", precision or "no", "--dynamo_backend", "no"]
    slurm = "SLURM_JOB_NODELIST" in env and "SLURM_JOB_ID" in env
    if slurm:
        args += ["--machine_rank", str(int(env.get("SLURM_NODEID", 0))),
                 "--main_process_ip", first_host(env["SLURM_JOB_NODELIST"])]
    port = env.get("MASTER_PORT") or (str(PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN) if slurm else None)
    return args + (["--main_process_port", port] if port else [])


def free_port() -> str:
    """A TCP port nothing listens on now (for a local cell's rendezvous; Accelerate's default may be taken)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def launcher(env: Mapping[str, str], processes: int, nodes: int, precision: str | None) -> list[str]:
    """The module prefix of a cell's command: ``-m bench`` alone, or under Accelerate's launcher when the
    cell has more than one process (``processes`` per node on ``nodes`` nodes)."""
    if processes * nodes <= 1:
        return ["-m", "bench"]
    return ["-m", "accelerate.commands.launch", *accelerate_args(env, processes, precision), "-m", "bench"]
