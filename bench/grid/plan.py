"""Check a whole grid before anything is submitted, and fix its cells and hash.

Every protocol loads, its data is where the protocol says and no test set shares a file with train or
val (once per protocol); every cell's detector, preset and settings resolve; ``run.threads`` fits the
cores a cell gets. The first problem stops the grid with one sentence that names the cell. Nothing is
submitted and no directory is made before this passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.grid.spec import Cell, Grid, GridError, expand, grid_hash
from bench.inputs import check_threads


@dataclass(frozen=True)
class Plan:
    """A checked grid: its definition, its cells in order, and its hash."""

    grid: Grid
    cells: list[Cell]
    hash: str
    resolved: dict[str, dict[str, Any]]

    def cell(self, cell_id: str) -> Cell:
        """The cell with this id."""
        return next(c for c in self.cells if c.id == cell_id)


def _describe(cell: Cell) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in cell.overrides.items())
    return (f"cell {cell.id} (protocol {cell.protocol_name}, detector {cell.detector}, seed {cell.seed}"
            f"{', ' + settings if settings else ''})")


def plan_grid(grid: Grid, check_data: bool = True) -> Plan:
    """Load every protocol, expand the cells, resolve every cell's detector settings, find every dataset.

    Raises :class:`GridError` naming the first cell (or the protocol) that cannot run.
    """
    from bench.data.identity import check_held_out, identify_all
    from bench.data.splits import build_sources, resolve_all
    from bench.plugin.factory import resolve_detector
    from bench.plugin.registry import import_plugins
    from bench.protocol import load_protocol

    import_plugins(grid.run.plugins)
    protocols, loaded = {}, {}
    for protocol in grid.protocols:
        try:
            proto = load_protocol(protocol)
        except BenchError as err:
            raise GridError(f"Grid protocol {protocol!r} cannot be used: {err}") from None
        loaded[protocol] = proto
        protocols[protocol] = (proto.name, list(proto.seeds))
    cells = expand(grid, protocols)
    resolved = {}
    for cell in cells:
        proto = loaded[cell.protocol]
        try:
            spec = resolve_detector(cell.detector, cell.overrides, proto.detector_defaults)
        except BenchError as err:
            raise GridError(f"{_describe(cell)} cannot run: {err}") from None
        resolved[cell.id] = {"protocol_sha256": proto.sha256(), "config_sha256": spec.config_sha256(),
                             "detector_version": str(getattr(spec.cls, "version", ""))}
    _check_threads(grid)
    if check_data:
        data_root = grid.run.data_root or os.environ.get("BENCH_DATA_ROOT")
        for protocol, proto in loaded.items():
            first = next(c for c in cells if c.protocol == protocol)
            try:
                splits = resolve_all(proto, build_sources(proto, Path(data_root) if data_root else None),
                                     grid.run.limit)
                check_held_out(proto, splits, identify_all(splits))  # as `bench run` does, before any cell
            except BenchError as err:
                raise GridError(f"{_describe(first)} and every other cell of protocol {proto.name} cannot "
                                f"run: {err}") from None
    return Plan(grid, cells, grid_hash(cells, grid, resolved), resolved)


def _check_threads(grid: Grid) -> None:
    """``run.threads`` within the cores a cell gets: this machine's (local), or ``cpus_per_cell`` (slurm)."""
    threads, executor = grid.run.threads, grid.executor
    where = f"Grid {grid.name}" if grid.name else "The grid"
    if threads is None:
        return
    if executor.kind == "local":
        try:
            check_threads(threads, "run.threads (--threads)")
        except BenchError as err:
            raise GridError(f"{where}: {err}") from None
    elif executor.cpus_per_cell is not None and threads > executor.cpus_per_cell:
        raise GridError(f"{where}: run.threads (--threads) {threads} is more than executor.cpus_per_cell "
                        f"{executor.cpus_per_cell}, the cores each cell gets; use at most {executor.cpus_per_cell}.")
