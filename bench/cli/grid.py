"""``bench grid``: run a grid of cells (one ``bench run`` each) on SLURM or this machine; status, cancel, collect."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.cli.grid_flags import add_flags, grid_from_args

EXAMPLES = ("bench grid examples/grids/embedded_leaderboard.yaml --out runs/leaderboard\n"
            "  bench grid --protocol synthetic_universal --detector sam,corit --seeds 0,1,2 -o rho=0,0.05,0.5 "
            "--out runs/rho\n"
            "  bench grid grid.yaml --executor slurm --partition gpu --time-limit 240 --gpus-per-cell 1 "
            "--max-concurrent 16\n"
            "  bench grid grid.yaml --dry-run\n"
            "  bench grid status runs/leaderboard\n"
            "  bench grid cancel runs/leaderboard\n"
            "  bench grid collect runs/leaderboard --submit")
ACTIONS = ("status", "cancel", "collect")


def add(command) -> None:
    """Register ``bench grid``."""
    grid = command("grid", EXAMPLES, "Run a grid (protocols x detectors x settings x seeds), one bench run per "
                   "cell, on SLURM or locally (submitit); `bench grid status|cancel|collect DIR` follow it.")
    grid.add_argument("target", nargs="?", metavar="GRID.yaml | status | cancel | collect",
                      help="a grid file (or none: the flag form), or an action on a grid directory")
    grid.add_argument("directory", nargs="?", metavar="DIR", help="the grid directory of status, cancel, collect")
    add_flags(grid)
    grid.set_defaults(handler=cmd_grid)


def cmd_grid(args: argparse.Namespace) -> None:
    """Dispatch ``bench grid [GRID.yaml]`` and ``bench grid status|cancel|collect DIR``."""
    from bench.errors import ConfigError

    if args.target in ACTIONS:
        if not args.directory:
            raise ConfigError(f"bench grid {args.target} needs the grid directory, e.g. bench grid {args.target} "
                              "runs/leaderboard.")
        return {"status": _status, "cancel": _cancel, "collect": _collect}[args.target](args)
    if args.directory:
        raise ConfigError(f"bench grid takes one grid file, got {args.target!r} and {args.directory!r}; for a "
                          f"grid directory use one of {', '.join(ACTIONS)}.")
    return _issue(args)


def _issue(args: argparse.Namespace) -> None:
    from bench.grid import GridDir, issue, plan_grid, totals
    from bench.grid.status import lines

    grid = grid_from_args(args)
    plan = plan_grid(grid)
    gdir = GridDir(args.out or Path("runs") / "grids" / (grid.name or f"grid-{plan.hash[:10]}"))
    if args.dry_run:
        return _dry_run(plan, gdir)
    try:
        outcome = issue(plan, gdir, wait=not args.no_wait)
    except KeyboardInterrupt:
        print(f"\ninterrupted: jobs already submitted keep running; see them with `bench grid status {gdir.root}`, "
              f"cancel them with `bench grid cancel {gdir.root}`, and run the same command again to follow them "
              "(cells not yet submitted are submitted then).", file=sys.stderr)
        sys.exit(130)
    shown = [s for s in outcome.states if s.state != "done"] if len(outcome.states) > 40 else outcome.states
    for line in lines(shown):
        print(line)
    print(f"grid {gdir.root}: {totals(outcome.states)}")
    if args.no_wait:
        held = f"; {len(outcome.unsubmitted)} cell(s) wait for the next `bench grid` command" \
            if outcome.unsubmitted else ""
        print(f"follow with `bench grid status {gdir.root}`, cancel with `bench grid cancel {gdir.root}`{held}")
    elif outcome.complete:
        print(f"collect with `bench grid collect {gdir.root}`")
    else:
        print(f"some cells did not finish: `bench grid status {gdir.root}` says why; run the same command again to "
              "resume interrupted cells (add --retries N to retry failed ones)")
        sys.exit(1)


def _dry_run(plan, gdir) -> None:
    from bench.grid.run import task_for, to_submit
    from bench.grid.status import cell_states

    gdir.check(plan)
    states = {s.cell: s for s in cell_states(gdir)} if gdir.exists() else {}
    wanted = set(to_submit(list(states.values()), plan.grid.executor.retries)) if states else None
    ex = plan.grid.executor
    print(f"grid {gdir.root} ({plan.hash[:12]}): {len(plan.cells)} cells on the {ex.kind} executor")
    width = max(len(c.id) for c in plan.cells)
    for cell in plan.cells:
        state = states.get(cell.id)
        action = "submit" if wanted is None or cell.id in wanted else "leave"
        print(f"{cell.id:<{width}}  {action}{f' ({state.state})' if state else ''}")
    example = task_for(plan, gdir, plan.cells[0].id)
    print("each cell runs: python -m bench " + shlex.join(example.fresh))


def _status(args: argparse.Namespace) -> None:
    from bench.grid import GridDir, cell_states, totals
    from bench.grid.status import lines

    gdir = GridDir(args.directory)
    states = cell_states(gdir)
    for line in lines(states):
        print(line)
    print(totals(states))


def _cancel(args: argparse.Namespace) -> None:
    from bench.grid import GridDir, cancel

    gdir = GridDir(args.directory)
    cells = cancel(gdir)
    print(f"cancelled {len(cells)} job(s)" + (f": {', '.join(cells)}" if cells else " (none was queued or running)"))
    if cells:
        print(f"their runs stay resumable: the same `bench grid` command resumes them into {gdir.root}")


def _collect(args: argparse.Namespace) -> None:
    from tabulate import tabulate

    from bench.grid import GridDir, collect, submit_cells, tables

    gdir = GridDir(args.directory)
    if args.csv:
        collect(gdir).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    for protocol, table in tables(gdir).items():
        print(f"\n{protocol}")
        print(tabulate(table, headers="keys", showindex=False, floatfmt=".4f"))
    if args.submit:
        stored, before = submit_cells(gdir, Path(args.leaderboard))
        print(f"\nstored {len(stored)} run(s) in {args.leaderboard}/results"
              + (f" ({len(before)} stored earlier)" if before else "")
              + f"; rebuild the pages with `bench leaderboard build --leaderboard-dir {args.leaderboard}`")
