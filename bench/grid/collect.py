"""``bench grid collect``: a grid's finished cells as tables, and into the leaderboard through ``submit``.

Results are read with the leaderboard's own functions (:func:`bench.leaderboard.read_runs`,
:func:`bench.leaderboard.collect.load_run_dir`), and stored with :func:`bench.leaderboard.submit`,
so a grid's cells pass exactly the checks a single run passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bench.grid.manifest import GridDir
from bench.grid.spec import GridError
from bench.grid.status import finished

if TYPE_CHECKING:
    import pandas as pd


def finished_cells(gdir: GridDir) -> list[dict]:
    """The manifest's cells whose run is finished."""
    return [c for c in gdir.cells() if finished(gdir.run_dir(c["id"]))]


def collect(gdir: GridDir) -> pd.DataFrame:
    """Every metric of every finished cell: :func:`bench.leaderboard.read_runs` rows plus a ``cell`` column."""
    import pandas as pd

    from bench.leaderboard import read_runs

    frames = [read_runs(gdir.run_dir(c["id"])).assign(cell=c["id"]) for c in finished_cells(gdir)]
    if not frames:
        raise GridError(f"No cell of the grid in {gdir.root} has finished yet; see `bench grid status {gdir.root}`.")
    return pd.concat(frames, ignore_index=True)


def results(gdir: GridDir) -> dict[str, dict]:
    """The full ``results.json`` of every finished cell, by cell id (validated by the leaderboard's reader)."""
    from bench.leaderboard.collect import load_run_dir

    return {c["id"]: load_run_dir(gdir.run_dir(c["id"]), allow_partial=True).result for c in finished_cells(gdir)}


def tables(gdir: GridDir) -> dict[str, pd.DataFrame]:
    """Per protocol: one row per finished cell, the protocol's primary metric on each of its groups."""
    import pandas as pd

    frame = collect(gdir)
    primary = {r["protocol"]["name"]: r["protocol"]["primary"] for r in results(gdir).values()}
    cells = {c["id"]: c for c in gdir.cells()}
    out = {}
    for protocol, part in frame.groupby("protocol", sort=False):
        metric, _, target = primary[protocol].partition("@")
        part = part[(part["metric"] == metric) & ((part["target_kind"] == "group") | (part["target"] == target))]
        wide = part.pivot_table(index="cell", columns="target", values="value", sort=False)
        order = [target] + [t for t in wide.columns if t != target]
        wide = wide[order].rename(columns={target: f"{metric}@{target}"})
        meta = pd.DataFrame([{"cell": c, "detector": cells[c]["detector"], "seed": cells[c]["seed"],
                              "overrides": _words(cells[c]["overrides"])} for c in wide.index]).set_index("cell")
        out[protocol] = meta.join(wide).reset_index()
    return out


def _words(overrides: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items()) or "-"


def submit_cells(gdir: GridDir, leaderboard: Path) -> tuple[list[Path], list[Path]]:
    """Store every cell in ``leaderboard`` with :func:`bench.leaderboard.submit`: (stored now, stored before).

    Each cell is stored under :func:`leaderboard_id`. A partial grid, or one with unfinished cells, is
    refused whole; a cell whose very run is already stored (same id, start time and config) counts as
    stored before, so collecting twice is safe.
    """
    from bench.leaderboard import submit

    manifest = gdir.manifest()
    if manifest["definition"]["partial"]:
        raise GridError(f"The grid in {gdir.root} is partial (run.limit or run.max_steps); partial runs never enter "
                        "the leaderboard, so run the grid again without them into another --out.")
    waiting = [c["id"] for c in gdir.cells() if not finished(gdir.run_dir(c["id"]))]
    if waiting:
        raise GridError(f"{len(waiting)} cell(s) of the grid in {gdir.root} are not finished (first: {waiting[0]}); "
                        f"finish them (`bench grid status {gdir.root}`) before submitting the grid.")
    stored, before = [], []
    for cell_id, result in results(gdir).items():
        run_id = leaderboard_id(result)
        dest = Path(leaderboard, "results", result["protocol"]["name"], result["detector"]["name"], f"{run_id}.json")
        if dest.is_file() and _same_run(json.loads(dest.read_text(encoding="utf-8")), result):
            before.append(dest)
            continue
        stored.append(submit(gdir.run_dir(cell_id), leaderboard, run_id=run_id))
    return stored, before


def leaderboard_id(result: dict) -> str:
    """A cell's id on the leaderboard: its start stamp and its name (``20261207-211503-s0``).

    The run directory keeps the cell's name (``s0``), which is unique only within its grid; two grids
    of one cell (a protocol version bump, another grid directory) then store two files, not a clash.
    """
    from datetime import datetime

    started = datetime.fromisoformat(result["timing"]["started_at"])
    return f"{started:%Y%m%d-%H%M%S}-{result['run_id']}"


def _same_run(stored: dict, result: dict) -> bool:
    keys = (("seed",), ("timing", "started_at"), ("detector", "config_sha256"), ("protocol", "sha256"))

    def get(d: dict, path: tuple) -> object:
        for key in path:
            d = d.get(key, {}) if isinstance(d, dict) else {}
        return d

    return all(get(stored, k) == get(result, k) for k in keys)
