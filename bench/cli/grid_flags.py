"""``bench grid``'s flags, and the grid they describe (alone, or over a grid file's keys)."""

from __future__ import annotations

import argparse
from typing import Any

#: (flag, grid file key under ``run:``) of the bench run flags a grid passes to every cell.
RUN_FLAGS = [("--data-root", "data_root"), ("--batch-size", "batch_size"), ("--precision", "precision"),
             ("--workers", "workers"), ("--threads", "threads"), ("--decode", "decode"),
             ("--limit", "limit"), ("--max-steps", "max_steps")]
#: (flag, grid file key under ``executor:``).
EXECUTOR_FLAGS = [("--executor", "kind"), ("--partition", "partition"), ("--time-limit", "time_limit_min"),
                  ("--cpus-per-cell", "cpus_per_cell"), ("--gpus-per-cell", "gpus_per_cell"),
                  ("--nodes-per-cell", "nodes_per_cell"), ("--mem-gb", "mem_gb"), ("--account", "account"),
                  ("--qos", "qos"), ("--constraint", "constraint"), ("--max-concurrent", "max_concurrent"),
                  ("--retries", "retries"), ("--signal-delay", "signal_delay_s"), ("--max-requeues", "max_requeues")]


def add_flags(grid: argparse.ArgumentParser) -> None:
    """The axes, the run flags, the executor settings and the actions' options."""
    axes = grid.add_argument_group("axes (flag form; with a grid file they replace its keys)")
    axes.add_argument("--protocol", help="comma-separated protocols (names or .yaml paths)")
    axes.add_argument("--detector", help="comma-separated detectors or presets")
    seeds = axes.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", help="comma-separated seeds (default 0)")
    seeds.add_argument("--all-seeds", action="store_true", help="each protocol's own seeds")
    axes.add_argument("-o", "--override", action="append", default=[], metavar="KEY=V1[,V2...]",
                      help="a detector setting for every cell (one value) or an axis (several values)")
    axes.add_argument("--partial", action="store_true", help="allow --limit / --max-steps (cells become partial runs)")
    run = grid.add_argument_group("bench run flags for every cell")
    for flag, key in RUN_FLAGS:
        run.add_argument(flag, dest=f"run_{key}", metavar=key.upper(), help=f"bench run {flag}")
    run.add_argument("--no-cache", action="store_true", help="bench run --no-cache")
    run.add_argument("--check-images", action="store_true", help="bench run --check-images")
    run.add_argument("--skip-bad-images", action="store_true", help="bench run --skip-bad-images")
    run.add_argument("--cpu", action="store_true", help="bench run --cpu")
    run.add_argument("--plugin", action="append", default=[], help="bench run --plugin (repeatable)")
    add_executor_flags(grid)
    act = grid.add_argument_group("what to do")
    act.add_argument("--out", help="the grid directory (default runs/grids/<grid file name>, or runs/grids/grid-<hash>)")
    act.add_argument("--dry-run", action="store_true", help="print the cells and what would be submitted")
    act.add_argument("--no-wait", action="store_true", help="return once the jobs are submitted")
    act.add_argument("--submit", action="store_true", help="collect: store the cells in the leaderboard")
    act.add_argument("--leaderboard-dir", default="leaderboard", dest="leaderboard", help="collect --submit: where")
    act.add_argument("--csv", help="collect: also write every metric of every cell to this CSV")


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """Where cells run: ``--executor local|slurm`` and the SLURM settings (also used by ``bench sweep``)."""
    ex = parser.add_argument_group("executor")
    for flag, key in EXECUTOR_FLAGS:
        ex.add_argument(flag, dest=f"ex_{key}", metavar=key.upper(), help=_EXECUTOR_HELP.get(key))
    ex.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra sbatch option, e.g. --sbatch exclude=node7 (repeatable)")


def executor_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``executor:`` mapping of a grid: ``base`` (a grid file's) with the flags given over it."""
    from bench.plugin.factory import parse_overrides

    executor = dict(base or {})
    for _, key in EXECUTOR_FLAGS:
        if getattr(args, f"ex_{key}") is not None:
            executor[key] = getattr(args, f"ex_{key}")
    executor["sbatch"] = {**executor.get("sbatch", {}), **parse_overrides(args.sbatch)}
    return executor


_EXECUTOR_HELP = {
    "kind": "local (default: submitit's LocalExecutor on this machine) or slurm",
    "partition": "SLURM partition (default: the cluster's default)",
    "cpus_per_cell": "CPUs per cell (slurm; each run also gets --threads C unless run.threads is set)",
    "mem_gb": "memory per cell in GB (slurm)",
    "account": "SLURM account to charge",
    "qos": "SLURM quality of service",
    "constraint": "SLURM node features, e.g. a100",
    "time_limit_min": "minutes per job (slurm default 60); a cell signalled before it is requeued and resumes",
    "gpus_per_cell": "K: the cell runs K processes through accelerate launch (K GPUs on SLURM)",
    "nodes_per_cell": "N nodes per cell (slurm): one launcher per node, rendezvous on the first",
    "max_concurrent": "at most N cells at once (local default 1; slurm: the job array's throttle)",
    "retries": "resubmit a failed cell up to N times (default 0)",
    "signal_delay_s": "seconds before the time limit when the job is told to stop and requeue (default 90)",
    "max_requeues": "how many time-limit requeues a cell may use (default 3)",
}


def _split(text: str) -> list[str]:
    """Comma-separated items; commas inside brackets or braces stay (``[1,2],[3,4]`` is two items)."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [i.strip() for i in [*items, current] if i.strip()]


def grid_from_args(args: argparse.Namespace):
    """The grid of a grid file and/or the flag form; flags given replace the file's keys."""
    from bench.errors import ConfigError
    from bench.grid.spec import load_grid, parse_grid
    from bench.plugin.factory import parse_overrides

    data: dict[str, Any] = load_grid(args.target).model_dump(mode="json") if args.target else {}
    if args.protocol:
        data["protocols"] = _split(args.protocol)
    if args.detector:
        data["detectors"] = _split(args.detector)
    if args.seeds:
        try:
            data["seeds"] = [int(s) for s in _split(args.seeds)]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1,2.") from None
    if args.all_seeds:
        data["seeds"] = "protocol"
    for item in args.override:
        key, sep, values = item.partition("=")
        parsed = [parse_overrides([f"{key}={v}"])[key] for v in _split(values)] if sep else []
        if not sep or not parsed:
            raise ConfigError(f"Override {item!r} is not key=value[,value...]; write it like -o rho=0,0.05.")
        if len(parsed) == 1:
            data.setdefault("settings", {})[key.strip()] = parsed[0]
        else:
            data.setdefault("overrides", {})[key.strip()] = parsed
    data["partial"] = data.get("partial", False) or args.partial
    run = data.setdefault("run", {})
    for _, key in RUN_FLAGS:
        if getattr(args, f"run_{key}") is not None:
            run[key] = getattr(args, f"run_{key}")
    for flag, key in (("no_cache", "cache"), ("check_images", "check_images"), ("skip_bad_images", "skip_bad_images"),
                      ("cpu", "cpu")):
        if getattr(args, flag):
            run[key] = key != "cache"
    run["plugins"] = [*run.get("plugins", []), *args.plugin]
    data["executor"] = executor_from_args(args, data.get("executor"))
    if not data.get("protocols") or not data.get("detectors"):
        raise ConfigError("bench grid needs a grid file, or --protocol and --detector (see bench grid --help).")
    return parse_grid(data, args.target or "bench grid flags")
