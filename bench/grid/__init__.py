"""Grids of runs (protocols × detectors × settings × seeds) on SLURM or this machine, through submitit.

One cell is one ordinary ``bench run`` (same run directory, ``results.json`` and ``--resume``) in a
directory named after the cell, so issuing a grid again is idempotent. Modules, in the order a
grid flows through them:

- :mod:`bench.grid.spec`: the grid file's schema, the flag form, cells and their names, the hash;
- :mod:`bench.grid.plan`: every cell checked before anything is submitted;
- :mod:`bench.grid.launch`: a cell's command line, and SLURM's allocation mapped to Accelerate's;
- :mod:`bench.grid.task`: the callable a job runs (a child ``bench run``, submitit's checkpoint);
- :mod:`bench.grid.executors`: the executor seam (submitit's local and SLURM executors);
- :mod:`bench.grid.manifest`, :mod:`bench.grid.status`: the grid directory and each cell's state;
- :mod:`bench.grid.run`: submit and follow (``bench grid``), cancel;
- :mod:`bench.grid.collect`: tables and leaderboard submission of the finished cells.

Public API: :func:`load_grid`, :func:`parse_grid`, :class:`Grid`, :func:`plan_grid`, :func:`issue`,
:func:`cell_states`, :func:`cancel`, :func:`collect`, :func:`submit_cells`, :class:`GridDir`.
Nothing here imports torch at import time; a job imports only :mod:`bench.grid.task`'s needs.
"""

from bench.grid.collect import collect, submit_cells, tables
from bench.grid.manifest import GridDir
from bench.grid.plan import Plan, plan_grid
from bench.grid.run import Outcome, cancel, issue
from bench.grid.spec import Cell, ExecutorSettings, Grid, GridError, RunSettings, load_grid, parse_grid
from bench.grid.status import CellStatus, cell_states, totals

__all__ = ["Cell", "CellStatus", "ExecutorSettings", "Grid", "GridDir", "GridError", "Outcome", "Plan", "RunSettings",
           "cancel", "cell_states", "collect", "issue", "load_grid", "parse_grid", "plan_grid", "submit_cells",
           "tables", "totals"]
