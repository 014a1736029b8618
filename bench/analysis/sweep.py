"""SAM radius sweep and the Critical Optimization Radius (COR), shared/corit.md §9.

A sweep is a grid (:mod:`bench.grid`): its detectors × one override axis ``rho`` × its seeds, one
ordinary bench run per cell under ``OUT/runs/<protocol>/<detector>/rho<ρ>-s<seed>``, on the local
or the SLURM executor. Issuing the same sweep again is idempotent: finished radii are reused,
interrupted ones resume from their saved state, and a sweep directory made with other settings
(another protocol, detector config, seed, limit or batch size) is refused. The COR is computed
from the collected cells.

Collapse at ρ: source-val AUC < 0.5 + ½·(AUC(ρ_min) − 0.5), ρ_min being the smallest swept radius.
See :func:`critical_radius` for the COR and its edge cases.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import ConfigError

NOTES = {
    "collapse": "COR = the largest swept radius below the first collapse",
    "no_collapse": "no collapse within the swept range; COR is the largest swept radius (a lower bound)",
    "undefined": "source-val AUC at the smallest radius is at or below chance (or NaN); nothing to collapse from",
}


def _say(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


def parse_radii(values: str | Sequence[Any]) -> list[float]:
    """Radii from ``"0,0.01,0.05"`` or a sequence; sorted, duplicates dropped.

    Raises :class:`ConfigError` naming the first value that is not a finite number >= 0.
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    radii = []
    for item in items:
        try:
            # bool is an int subclass, but True is not a radius anyone means.
            value = float("nan") if isinstance(item, bool) else float(item.strip() if isinstance(item, str) else item)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"--rho value {item!r} is not a radius; radii must be finite numbers >= 0, "
                              "for example --rho 0,0.01,0.05,0.1.")
        radii.append(value)
    if not radii:
        raise ConfigError("--rho lists no radius; give at least one, for example --rho 0,0.05,0.5.")
    return sorted(set(radii))


def run_name(rho: float, seed: int) -> str:
    """Deterministic run-directory name of one radius: ``rho0.05-s0`` (``rho0``, ``rho1``, ``rho1e-05``)."""
    from bench.grid.spec import cell_name

    return cell_name(seed, None, {"rho": float(rho)}, {})


def collapse_threshold(auc_at_rho_min: float) -> float:
    """Source-val AUC below which a radius counts as collapsed: 0.5 + ½·(AUC(ρ_min) − 0.5)."""
    return 0.5 + 0.5 * (auc_at_rho_min - 0.5)


def critical_radius(rhos: Sequence[float], val_aucs: Sequence[float]) -> tuple[float | None, float | None]:
    """The Critical Optimization Radius and the first collapsed radius: ``(cor, collapsed_at)``.

    Radii are sorted first. A NaN AUC counts as collapsed (the run diverged).

    - Some radius collapses: ``(largest radius below the first collapse, first collapsed radius)``.
    - None collapses: ``(largest swept radius, None)``; COR is then only a lower bound.
    - The smallest radius itself is at or below chance (AUC <= 0.5, or NaN): the threshold has no
      baseline to fall from, so ``(None, smallest radius)``: COR is undefined.
    """
    if len(rhos) != len(val_aucs) or not rhos:
        raise ValueError(f"need one AUC per radius and at least one radius; got {len(rhos)} and {len(val_aucs)}")
    pairs = sorted(zip((float(r) for r in rhos), (float(a) for a in val_aucs)))
    base = pairs[0][1]
    if math.isnan(base) or base <= 0.5:
        return None, pairs[0][0]
    threshold = collapse_threshold(base)
    for i, (rho, auc) in enumerate(pairs):
        if math.isnan(auc) or auc < threshold:
            return pairs[i - 1][0], rho
    return pairs[-1][0], None


def cor_summary(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """COR per detector from a sweep table (columns ``detector``, ``rho``, ``val_auc``), as in ``cor.json``.

    With several seeds per radius the rule reads the mean source-val AUC over the seeds.
    """
    out = {}
    frame = frame.groupby(["detector", "rho"], sort=False, as_index=False)["val_auc"].mean()
    for detector, part in frame.groupby("detector", sort=False):
        part = part.sort_values("rho")
        cor, collapsed = critical_radius(part["rho"].tolist(), part["val_auc"].tolist())
        base = float(part["val_auc"].iloc[0])
        status = "undefined" if cor is None else "collapse" if collapsed is not None else "no_collapse"
        out[str(detector)] = {
            "cor": cor, "collapsed_at": collapsed, "status": status, "note": NOTES[status],
            "rho_min": float(part["rho"].iloc[0]), "val_auc_at_rho_min": None if math.isnan(base) else base,
            "threshold": None if status == "undefined" else collapse_threshold(base),
            "rhos": part["rho"].tolist(), "val_aucs": [None if math.isnan(a) else a for a in part["val_auc"]],
        }
    return out


def format_cor_table(summary: dict[str, dict[str, Any]]) -> str:
    """The COR per detector as a plain-text table (for the CLI)."""
    from tabulate import tabulate

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    rows = [[name, show(s["cor"]), show(s["collapsed_at"]), show(s["val_auc_at_rho_min"]), show(s["threshold"]),
             s["note"]] for name, s in summary.items()]
    return tabulate(rows, headers=["detector", "COR", "collapsed at", "val AUC at ρ_min", "threshold", "note"])


def _check_detectors(proto, detectors: Sequence[str], radii: list[float], overrides: dict[str, Any]) -> dict:
    """Resolve every (detector, ρ) before any run, so a bad name or setting fails in seconds."""
    from bench.plugin.factory import resolve_detector

    if not detectors:
        raise ConfigError("The sweep needs at least one --detector.")
    if "rho" in overrides:
        raise ConfigError(f"-o rho={overrides['rho']} conflicts with the sweep, which sets rho from --rho; remove it.")
    specs = {}
    for name in detectors:
        spec = resolve_detector(name, overrides, proto.detector_defaults)
        if "rho" not in {f.name for f in dataclasses.fields(spec.cls.Config)}:
            raise ConfigError(f"Detector {name!r} has no 'rho' setting, so there is no SAM radius to sweep; "
                              "sweep a SAM-trained detector such as sam or corit.")
        for rho in radii:
            specs[name, rho] = resolve_detector(name, {**overrides, "rho": rho}, proto.detector_defaults)
    return specs


def points(frame: pd.DataFrame, out_dir: Path | None = None) -> pd.DataFrame:
    """One row per detector and radius: the mean over seeds, its seed range and its 95% interval over test images.

    Intervals come from the leaderboard's statistics (:func:`bench.leaderboard.aggregate.table`: the runs of
    one radius form a row, seeds fixed, test images resampled) when the run directories under ``out_dir``
    still hold their predictions; otherwise ``lo``/``hi`` are empty and the figure draws no bar.
    """
    grouped = frame.groupby(["detector", "rho"], sort=False)
    out = grouped.agg(seeds=("primary", "size"), primary=("primary", "mean"), seed_min=("primary", "min"),
                      seed_max=("primary", "max"), val_auc=("val_auc", "mean"), val_min=("val_auc", "min"),
                      val_max=("val_auc", "max")).reset_index().assign(lo=float("nan"), hi=float("nan"))
    dirs = [Path(out_dir) / d for d in frame["run_dir"]] if out_dir is not None else []
    if dirs and all((d / "predictions").is_dir() for d in dirs):
        from bench.leaderboard.aggregate import table
        from bench.leaderboard.collect import load_run_dir

        rho_of = {(det, Path(d).name): rho for det, d, rho in zip(frame["detector"], frame["run_dir"], frame["rho"])}
        tb = table([load_run_dir(d, allow_partial=True) for d in dirs])
        for e in tb.data["entries"] + tb.data["unranked"]:
            at = (out["detector"] == e["detector"]) & (out["rho"] == rho_of[e["detector"], e["run_ids"][0]])
            out.loc[at, ["lo", "hi"]] = e["primary"]["lo"], e["primary"]["hi"]
    return out


def _row(results: dict, detector: str, rho: float, primary: str, status: str) -> dict[str, Any]:
    from bench.metrics import is_count

    metric, _, target = primary.partition("@")
    table = results["groups"] if target in results["groups"] else results["metrics"]
    row: dict[str, Any] = {"detector": detector, "rho": rho, "seed": results["seed"],
                           "val_auc": results["selection"].get("val", {}).get("auc", float("nan")),
                           "primary": table.get(target, {}).get(metric, float("nan"))}
    for block in ("metrics", "groups"):
        for name, values in results[block].items():
            row.update({f"{name}/{k}": v for k, v in values.items() if not is_count(k)})
    return {**row, "status": status, "run_dir": results["run_dir"]}


def sweep_grid(protocol: str | Path, detectors: Sequence[str], rhos: str | Sequence[Any], seeds: Sequence[int] = (0,),
               data_root: str | Path | None = None, overrides: dict[str, Any] | None = None, opts: Any = None,
               limit: int | None = None, executor: Any = None):
    """The sweep as a grid definition: ``detectors`` × ``rho`` axis × ``seeds`` (``overrides`` for every cell)."""
    from bench.grid import Grid, RunSettings, parse_grid
    from bench.inputs import check_seeds
    from bench.plugin.registry import import_plugins
    from bench.protocol import load_protocol
    from bench.run.runner import RunnerOptions

    import_plugins()  # $BENCH_PLUGINS: the cells import them too
    seeds = check_seeds(list(seeds), "--seeds")  # as `bench run` does: range, and each seed once
    radii = parse_radii(rhos)
    overrides = dict(overrides or {})
    _check_detectors(load_protocol(protocol), detectors, radii, overrides)
    opts = opts or RunnerOptions()
    run = RunSettings(data_root=str(data_root) if data_root else None, batch_size=opts.batch_size,
                      precision=opts.precision, workers=str(opts.workers), threads=opts.threads, decode=opts.decode,
                      cache=opts.cache, skip_bad_images=opts.skip_bad_images, cpu=opts.cpu, limit=limit,
                      max_steps=opts.max_steps)
    definition = Grid(name="sweep", protocols=[str(protocol)], detectors=list(detectors), seeds=list(seeds),
                      settings=overrides, overrides={"rho": radii}, run=run,
                      partial=limit is not None or opts.max_steps is not None)
    data = definition.model_dump(mode="json")
    if executor is not None:
        data["executor"] = executor if isinstance(executor, dict) else executor.model_dump(mode="json")
    return parse_grid(data, "bench sweep")


def sweep(protocol: str | Path, detectors: Sequence[str], rhos: str | Sequence[Any], out_dir: str | Path,
          seed: int = 0, data_root: str | Path | None = None, overrides: dict[str, Any] | None = None,
          opts: Any = None, limit: int | None = None, executor: Any = None,
          seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Train each detector at each SAM radius and seed (a grid), then write ``sweep.csv``, ``points.csv``,
    ``sweep.png`` and ``cor.json``.

    ``seeds`` (default: ``[seed]``): every radius is trained once per seed; ``points.csv`` and the figure
    show the mean over seeds with its seed range and its 95% interval over test images (:func:`points`).

    ``rhos``: radii as ``"0,0.01,0.05"`` or a sequence (validated before any run). ``overrides``
    apply to every run (they must not set ``rho``); ``opts`` are :class:`bench.run.runner.RunnerOptions`
    (batch size, precision, threads, max steps, cache); ``limit`` caps images per class as in ``bench
    run --limit``; ``executor``: :class:`bench.grid.ExecutorSettings` or its mapping (default: local, one
    cell at a time).

    Returns the sweep table: detector, rho, val_auc (source-val AUC of the selected checkpoint),
    primary (the protocol's primary metric), ``<test>/<metric>`` and ``<group>/<metric>`` columns,
    status (``ran`` or ``reused``) and run_dir (relative to ``out_dir``). :func:`cor_summary` turns it into the COR table.
    """
    from bench.analysis.plots import plot_sweep
    from bench.grid import GridDir, GridError, issue, plan_grid
    from bench.grid.collect import results

    seeds = list(seeds if seeds is not None else [seed])  # a repeated seed is refused by sweep_grid
    plan = plan_grid(sweep_grid(protocol, detectors, rhos, seeds, data_root, overrides, opts, limit, executor))
    out_dir = Path(out_dir)
    gdir = GridDir(out_dir)
    outcome = issue(plan, gdir, say=_say)
    unfinished = [s for s in outcome.states if s.state != "done"]
    if unfinished:
        first = unfinished[0]
        raise GridError(f"{len(unfinished)} radius run(s) did not finish, first {first.cell} ({first.state}"
                        f"{': ' + first.reason if first.reason else ''}); finished radii are kept under "
                        f"{out_dir / 'runs'}, so run the same command again to resume.")
    found = results(gdir)
    rows = []
    for cell in plan.cells:
        result = {**found[cell.id], "run_dir": str(gdir.run_dir(cell.id))}
        status = "ran" if cell.id in outcome.submitted else "reused"
        rows.append(_row(result, cell.detector, float(cell.overrides["rho"]), found[cell.id]["protocol"]["primary"],
                         status))
    frame = pd.DataFrame(rows)
    # Relative to the sweep's folder, so the CSV carries no machine path and survives moving the folder.
    frame["run_dir"] = [os.path.relpath(p, gdir.root) for p in frame["run_dir"]]
    summary = cor_summary(frame)
    protocol_info = found[plan.cells[0].id]["protocol"]
    (out_dir / "cor.json").write_text(json.dumps({"protocol": protocol_info["name"], "primary": protocol_info["primary"],
                                                  "seeds": seeds, "detectors": summary}, indent=2) + "\n")
    frame.to_csv(out_dir / "sweep.csv", index=False, float_format="%.6g")
    drawn = points(frame, gdir.root)
    drawn.to_csv(out_dir / "points.csv", index=False, float_format="%.6g")
    plot_sweep(drawn, out_dir / "sweep.png", protocol_info["primary"], summary,
               title=f"{protocol_info['name']}: SAM radius sweep, seed{'s' if len(seeds) > 1 else ''} "
                     f"{', '.join(map(str, seeds))}")
    return frame
