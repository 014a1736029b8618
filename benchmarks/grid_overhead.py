"""Scheduling overhead of `bench grid` per cell, local executor against SLURM, measured in one run.

Usage: python benchmarks/grid_overhead.py [--cells 12] [--executors local,slurm] [--max-concurrent 1]

Runs the same grid of quick cells (clip_linear on a small synthetic protocol, one seed per cell)
once per executor, one cell at a time (SLURM: a job array throttled to 1), and reports per cell:

- overhead = (grid wall time − Σ the cells' bench run process times) / cells: submission, the
  executor starting each job, the waiting command noticing the end (what a grid adds to its runs);
- with start-up = (grid wall time − Σ the runs' own ``timing.total_seconds``) / cells: the same
  plus each bench run's interpreter start and imports (what a grid costs over runs in one process);
- gap: median time from one cell's bench run ending to the next one's starting.

SLURM needs a cluster (`.ci/slurm.sh start` brings up a one-node one here); without `sbatch` only the
local executor is measured. Medians and ratios come from this one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PROTOCOL = """\
name: overhead_tiny
version: 1
description: A small synthetic protocol for measuring grid overhead.
sources:
  synth: {type: synthetic, image_size: 32, n_per_class: {train: 12, val: 8, test: 8}, seed: 0}
detector_defaults: {backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}
train: {source: synth, split: train, subsets: [upsample_nearest]}
val: {source: synth, split: val, subsets: [upsample_nearest], select: "best:auc"}
test:
  upsample_nearest: {source: synth, split: test, subsets: [upsample_nearest]}
  blend_ellipse: {source: synth, split: test, subsets: [blend_ellipse]}
groups:
  unseen: [blend_ellipse]
metrics: [auc]
primary: auc@unseen
"""


def measure(kind: str, cells: int, concurrent: int, work: Path) -> dict:
    """Run the grid on one executor; wall time, Σ process times, Σ in-run times, gaps."""
    from bench.grid import GridDir, issue, parse_grid, plan_grid

    os.environ["BENCH_CACHE"] = str(work / f"cache-{kind}")  # each executor starts from a cold feature cache
    executor = {"kind": kind, "max_concurrent": concurrent}
    if kind == "slurm":
        executor.update(cpus_per_cell=1, time_limit_min=10)
    grid = parse_grid({"protocols": [str(work / "overhead_tiny.yaml")], "detectors": ["clip_linear"],
                       "seeds": list(range(cells)), "run": {"threads": 1, "batch_size": 8},
                       "executor": executor}, "grid_overhead")
    plan = plan_grid(grid)
    gdir = GridDir(work / f"grid-{kind}")
    start = time.perf_counter()
    outcome = issue(plan, gdir, say=lambda _: None, progress=False)
    wall = time.perf_counter() - start
    if not outcome.complete:
        raise SystemExit(f"{kind}: the grid did not finish; see `bench grid status {gdir.root}`")
    exits = []
    for cell in plan.cells:  # a job writes its exit record just after results.json: wait a moment for it
        deadline = time.monotonic() + 30
        while not gdir.exit_records(cell.id) and time.monotonic() < deadline:
            time.sleep(0.2)
        exits.append(gdir.exit_records(cell.id)[-1])
    inside = sum(json.loads((gdir.run_dir(c.id) / "results.json").read_text())["timing"]["total_seconds"]
                 for c in plan.cells)
    spans = sorted((e["started"], e["ended"]) for e in exits)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    return {"wall": wall, "process": sum(e - s for s, e in spans), "inside": inside,
            "gap": statistics.median(gaps) if gaps else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--executors", default="local,slurm")
    parser.add_argument("--max-concurrent", type=int, default=1,
                        help="cells at once (1: overheads add up and can be read off the wall time)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kinds = [k for k in args.executors.split(",") if k != "slurm" or shutil.which("sbatch")]
    if kinds != args.executors.split(","):
        print("sbatch is not on PATH: SLURM not measured (`.ci/slurm.sh start` brings up a one-node cluster)")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="grid-overhead-") as tmp:
        work = Path(tmp)
        (work / "overhead_tiny.yaml").write_text(PROTOCOL)
        for kind in kinds:
            rows[kind] = measure(kind, args.cells, args.max_concurrent, work)
    n = args.cells
    print(f"{n} cells of clip_linear on a 32-px synthetic protocol, {args.max_concurrent} at a time, "
          f"{os.cpu_count()} CPUs")
    print(f"{'executor':<9} {'wall s':>7} {'Σ process s':>12} {'Σ in-run s':>11} {'overhead s/cell':>16} "
          f"{'with start-up s/cell':>21} {'median gap s':>13}")
    for kind, r in rows.items():
        print(f"{kind:<9} {r['wall']:>7.1f} {r['process']:>12.1f} {r['inside']:>11.1f} "
              f"{(r['wall'] - r['process']) / n:>16.2f} {(r['wall'] - r['inside']) / n:>21.2f} {r['gap']:>13.2f}")
    if {"local", "slurm"} <= set(rows):
        local, slurm = rows["local"], rows["slurm"]
        print(f"slurm / local: overhead per cell {(slurm['wall'] - slurm['process']) / (local['wall'] - local['process']):.2f}x, "
              f"median gap {slurm['gap'] / local['gap']:.2f}x, wall {slurm['wall'] / local['wall']:.2f}x")


if __name__ == "__main__":
    main()
