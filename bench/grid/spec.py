"""A grid definition: its YAML schema, the flag form, and its expansion into cells.

A grid is protocols × detectors (or presets) × variants × override axes × seeds. Every combination
is one *cell*: one ordinary ``bench run`` whose run directory name is a function of the cell
(:func:`cell_name`), so issuing the same grid again finds the same directories. The grid file::

    protocols: [synthetic_universal]          # names or protocol .yaml paths
    detectors: [sam, corit]                   # detectors or presets
    seeds: [0, 1, 2]                          # or "protocol": each protocol's own seeds
    settings: {epochs: 3}                     # -o for every cell
    overrides: {rho: [0, 0.05, 0.5]}          # axes: every combination of their values
    variants: {full: {}, no_rrm: {rrm: false}}   # one axis of named override sets
    run: {batch_size: 64, data_root: data}    # bench run flags for every cell
    partial: false                            # true allows run.limit / run.max_steps
    executor: {kind: slurm, partition: gpu, time_limit_min: 240, gpus_per_cell: 1}
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import BenchError, ConfigError
from bench.inputs import check_seeds, read_text, read_yaml

#: Characters a run directory name (and a leaderboard run id) may hold.
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 80


class GridError(BenchError):
    """A grid cannot be expanded, submitted, followed or collected; the message says why and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutorSettings(_Strict):
    """Where and how cells run. Not part of the grid's hash: a grid may move between executors."""

    kind: Literal["local", "slurm"] = "local"
    partition: str | None = None
    time_limit_min: int | None = Field(default=None, gt=0)
    cpus_per_cell: int | None = Field(default=None, gt=0)
    gpus_per_cell: int = Field(default=0, ge=0)
    nodes_per_cell: int = Field(default=1, gt=0)
    mem_gb: float | None = Field(default=None, gt=0)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch: dict[str, str | int | float | bool] = {}
    max_concurrent: int | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0)
    signal_delay_s: int = Field(default=90, gt=0)
    max_requeues: int = Field(default=3, ge=0)


class RunSettings(_Strict):
    """``bench run`` flags given to every cell."""

    data_root: str | None = None
    batch_size: int = Field(default=64, gt=0)
    precision: Literal["no", "bf16", "fp16"] | None = None
    workers: str = "auto"
    threads: int | None = Field(default=None, gt=0)
    decode: Literal["cpu", "gpu"] = "cpu"
    cache: bool = True
    check_images: bool = False
    skip_bad_images: bool = False
    cpu: bool = False
    limit: int | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    plugins: list[str] = []

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> str:
        text = str(value)
        if text != "auto" and not (text.isdigit() and int(text) >= 0):
            raise ValueError("workers is `auto` or a whole number >= 0")
        return text

    def affects_numbers(self) -> dict[str, Any]:
        """The flags that can change a cell's numbers (part of the grid's hash); paths and threads are not."""
        return {k: getattr(self, k) for k in ("batch_size", "precision", "decode", "skip_bad_images", "cpu",
                                               "limit", "max_steps")}


class Grid(_Strict):
    """A grid definition (see the module docstring for the file form)."""

    name: str | None = None
    description: str | None = None
    protocols: list[str] = Field(min_length=1)
    detectors: list[str] = Field(min_length=1)
    seeds: list[int] | Literal["protocol"] = [0]
    settings: dict[str, Any] = {}
    overrides: dict[str, list[Any]] = {}
    variants: dict[str, dict[str, Any]] = {}
    run: RunSettings = RunSettings()
    partial: bool = False
    executor: ExecutorSettings = ExecutorSettings()

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int] | str) -> list[int] | str:
        if value == "protocol":  # the protocol's own seeds, checked when it loads
            return value
        try:  # the range and repeats `bench run --seeds` refuses, refused before any cell is submitted
            return check_seeds(value, "the list")
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Grid:
        for key in ("protocols", "detectors", "seeds"):
            values = getattr(self, key)
            if isinstance(values, list) and len(set(values)) != len(values):
                raise ValueError(f"{key} lists a value twice")
        if isinstance(self.seeds, list) and not self.seeds:
            raise ValueError("seeds is empty; give at least one seed, or `protocol`")
        for key, values in self.overrides.items():
            if not values:
                raise ValueError(f"override axis {key!r} has no value")
        varied = [set(self.overrides)] + [set(v) for v in self.variants.values()]
        for key in self.settings:
            if any(key in keys for keys in varied):
                raise ValueError(f"{key!r} is both a fixed setting and varied by an axis; keep one")
        for variant in self.variants.values():
            clash = set(variant) & set(self.overrides)
            if clash:
                raise ValueError(f"{min(clash)!r} is set by a variant and by an override axis; keep one")
        for name in self.variants:
            if not name or _SAFE.search(name):
                raise ValueError(f"variant name {name!r} may hold only letters, digits, '_', '.' and '-'")
        quick = [k for k in ("limit", "max_steps") if getattr(self.run, k) is not None]
        if quick and not self.partial:
            raise ValueError(f"run.{quick[0]} makes every cell a partial run; mark the grid `partial: true` "
                             "(--partial), or remove it")
        if self.executor.nodes_per_cell > 1 and self.executor.kind == "local":
            raise ValueError("nodes_per_cell > 1 needs the slurm executor")
        return self


@dataclass(frozen=True)
class Cell:
    """One run of a grid: a protocol, a detector, a seed and the overrides this cell applies."""

    protocol: str          # as the grid names it: a registered name or an absolute .yaml path
    protocol_name: str     # the protocol's own name (its run-directory folder)
    detector: str
    seed: int
    overrides: dict[str, Any] = field(hash=False)
    name: str = ""         # the run directory's name, from :func:`cell_name`

    @property
    def id(self) -> str:
        """``<protocol>/<detector>/<name>``: the run directory under the grid's ``runs/``, unique in a grid."""
        return f"{self.protocol_name}/{self.detector}/{self.name}"


def read_grid_file(path: str | Path) -> dict[str, Any]:
    """The one place a grid file is read: the project's YAML reader (size, depth, alias, integer and
    duplicate-key limits, each refusal one sentence at its line)."""
    data = read_yaml(path, "Grid file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a grid file is a YAML mapping with protocols, detectors, seeds, ...; "
                          "see README 'Run a leaderboard on a cluster'.")
    return data


def parse_grid(data: dict[str, Any], where: str, text: str | None = None, base: Path | None = None) -> Grid:
    """Validate a grid mapping; errors name the key (and its line when ``text`` is the file's YAML).

    Protocol paths and ``run.data_root`` are made absolute, relative to ``base`` (the grid file's
    folder) when the file is there, else to the current directory, so every cell finds them.
    """
    from bench.protocol.files import located_error

    try:
        grid = Grid.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling against README 'Run a leaderboard on a cluster'"
        loc = tuple(first["loc"])
        if text is not None:
            raise located_error(text, where, loc, msg) from None
        key = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(f"{where}, key {key!r}: {msg.rstrip('.')}.") from None
    protocols = [_absolute(p, base) if p.endswith((".yaml", ".yml")) else p for p in grid.protocols]
    run = grid.run.model_copy(update={"data_root": _absolute(grid.run.data_root, base)}) if grid.run.data_root \
        else grid.run
    return grid.model_copy(update={"protocols": protocols, "run": run})


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file."""
    path = Path(path)
    data = read_grid_file(path)
    grid = parse_grid(data, str(path), read_text(path, "Grid file"), base=path.parent)
    return grid if grid.name else grid.model_copy(update={"name": path.stem})


def _absolute(value: str, base: Path | None) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None and (base / path).exists():
        path = base / path
    return str(path.resolve())


def value_text(value: Any) -> str:
    """A value as ``-o key=VALUE`` text that reads back as the same value (YAML flow style)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n...\n").strip()


def cell_name(seed: int, variant: str | None, axes: dict[str, Any], settings: dict[str, Any]) -> str:
    """The run directory name of a cell: ``<variant>-<key><value>...-s<seed>``, e.g. ``rho0.05-s0``.

    Numbers print as Python writes them (``rho1e-05``, ``rho0``, ``lr1e30``); characters unfit for a file name
    become ``_``, and a name that had to be changed or cut gets an 8-character hash of the cell.
    """
    parts = [variant] if variant else []
    for key, value in {**axes, **settings}.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = repr(float(value)).removesuffix(".0").replace("e+", "e") if number else value_text(value)
        parts.append(f"{key}{text}")
    readable = "-".join([*parts, f"s{seed}"])
    safe = _SAFE.sub("_", readable)
    if safe == readable and len(safe) <= _MAX_NAME:
        return safe
    digest = hashlib.sha256(readable.encode()).hexdigest()[:8]
    return f"{safe[:_MAX_NAME - 9]}-{digest}"


def expand(grid: Grid, protocols: dict[str, tuple[str, list[int]]]) -> list[Cell]:
    """Every cell of ``grid``; ``protocols`` maps each grid protocol to (its name, its own seeds)."""
    cells: list[Cell] = []
    axes = list(grid.overrides.items())
    variants = list(grid.variants.items()) or [(None, {})]
    for protocol in grid.protocols:
        name, own_seeds = protocols[protocol]
        seeds = own_seeds if grid.seeds == "protocol" else grid.seeds
        for detector, (variant, preset), values in itertools.product(
                grid.detectors, variants, itertools.product(*(v for _, v in axes))):
            chosen = {k: v for (k, _), v in zip(axes, values)}
            for seed in seeds:
                overrides = {**grid.settings, **preset, **chosen}
                cells.append(Cell(protocol, name, detector, int(seed), overrides,
                                  cell_name(int(seed), variant, chosen, grid.settings)))
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.id in seen:
            raise GridError(f"Two cells of the grid share the run directory {cell.id}; two protocols with "
                            "the same name? Give each protocol a distinct name.")
        seen[cell.id] = cell
    return cells


def grid_hash(cells: list[Cell], grid: Grid, resolved: dict[str, dict[str, Any]]) -> str:
    """SHA-256 of what a grid computes: its cells (with each detector's resolved config and version,
    and each protocol's hash), the flags that change numbers, partiality and processes per cell."""
    body = {"cells": [{"id": c.id, "protocol": c.protocol_name, "detector": c.detector, "seed": c.seed,
                       "overrides": c.overrides, **resolved[c.id]} for c in cells],
            "run": grid.run.affects_numbers(), "partial": grid.partial,
            "processes": max(grid.executor.gpus_per_cell, 1) * grid.executor.nodes_per_cell}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
