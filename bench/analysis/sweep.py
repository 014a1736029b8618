"""SAM radius sweep and the Critical Optimization Radius (COR), shared/corit.md §9.

One ordinary :func:`bench.api.run` per (detector, ρ), all with the same seed and hence the same
data order, under ``OUT/runs/<protocol>/<detector>/rho<ρ>-s<seed>``. Those names are deterministic,
so running the same sweep again resumes it:

- a run directory with ``results.json`` is finished: it is read, not re-run (after checking it was
  made with the same protocol, detector settings, seed, ``limit`` and batch size; otherwise the
  sweep stops and asks for another ``--out``);
- a run directory without ``results.json`` was interrupted while being written: it is renamed to
  ``<name>.interrupted`` (``.interrupted-2``, ... if taken; nothing is deleted), the user is told,
  and the radius is run again under its deterministic name.

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
    return f"rho{repr(float(rho)).removesuffix('.0')}-s{seed}"


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


def _reusable(results: dict, expected: dict[str, Any], path: Path) -> dict:
    """Return ``results`` when the finished run matches this sweep's settings, else stop with the differences."""
    found = {"protocol sha256": results["protocol"]["sha256"], "detector config": results["detector"]["config_sha256"],
             "seed": results["seed"], "limit": results["runner"]["limit"],
             "batch size": results["runner"]["batch_size"], "max steps": results["runner"]["max_steps"]}
    differ = [k for k in expected if found[k] != expected[k]]
    if differ:
        raise ConfigError(f"{path} is a finished run of this radius made with a different {', '.join(differ)}; "
                          "resume with the same settings, or sweep into another --out.")
    return results


def _set_aside(path: Path) -> Path:
    """Rename an interrupted run directory out of the way (never delete it)."""
    target, k = path.with_name(path.name + ".interrupted"), 2
    while target.exists():
        target, k = path.with_name(f"{path.name}.interrupted-{k}"), k + 1
    path.rename(target)
    return target


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


def sweep(protocol: str | Path, detectors: Sequence[str], rhos: str | Sequence[Any], out_dir: str | Path,
          seed: int = 0, data_root: str | Path | None = None, overrides: dict[str, Any] | None = None,
          opts: Any = None, limit: int | None = None, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Train each detector at each SAM radius and seed, then write ``sweep.csv``, ``points.csv``, ``sweep.png``, ``cor.json``.

    ``seeds`` (default: ``[seed]``): every radius is trained once per seed; ``points.csv`` and the figure
    show the mean over seeds with its seed range and its 95% interval over test images (:func:`points`).

    ``rhos``: radii as ``"0,0.01,0.05"`` or a sequence (validated before any run). ``overrides``
    apply to every run (they must not set ``rho``); ``opts`` are :class:`bench.run.runner.RunnerOptions`
    (copied per run); ``limit`` caps images per class as in ``bench run --limit``. Finished radii of
    an earlier, interrupted sweep into the same ``out_dir`` are reused (see the module docstring).

    Returns the sweep table: detector, rho, val_auc (source-val AUC of the selected checkpoint),
    primary (the protocol's primary metric), ``<test>/<metric>`` and ``<group>/<metric>`` columns,
    status (``ran`` or ``reused``) and run_dir (relative to ``out_dir``). :func:`cor_summary` turns it into the COR table.
    """
    from bench.analysis.plots import plot_sweep
    from bench.api import run
    from bench.protocol import load_protocol
    from bench.run.results import INCOMPLETE, read_results
    from bench.run.runner import RunnerOptions

    radii = parse_radii(rhos)
    seeds = list(dict.fromkeys(seeds if seeds is not None else [seed]))
    proto = load_protocol(protocol)
    overrides = dict(overrides or {})
    specs = _check_detectors(proto, detectors, radii, overrides)
    opts = opts or RunnerOptions()
    out_dir = Path(out_dir)
    rows = []
    for (detector, rho), spec, run_seed in ((key, spec, s) for key, spec in specs.items() for s in seeds):
        name = run_name(rho, run_seed)
        path = out_dir / "runs" / proto.name / detector / name
        expected = {"protocol sha256": proto.sha256(), "detector config": spec.config_sha256(), "seed": run_seed,
                    "limit": limit, "batch size": opts.batch_size, "max steps": opts.max_steps}
        resume = None
        if (path / "results.json").is_file() and not (path / INCOMPLETE).exists():
            results = _reusable(read_results(path), expected, path)
            rows.append(_row({**results, "run_dir": str(path)}, detector, rho, proto.primary, "reused"))
            _say(f"{detector} rho={rho:g}: finished earlier, reusing {path}")
            continue
        if (path / INCOMPLETE).exists() and (path / "config.yaml").is_file():
            resume = path
            _say(f"{detector} rho={rho:g}: {path} was interrupted; resuming it from its last epoch")
        elif path.exists():
            moved = _set_aside(path)
            _say(f"{detector} rho={rho:g}: {path} has no results.json (an interrupted run); moved it to "
                 f"{moved.name} and running this radius again")
        _say(f"{detector} rho={rho:g}: training ({name})")
        try:
            results = run(protocol, detector, seed=run_seed, overrides={**overrides, "rho": rho}, data_root=data_root,
                          out_dir=out_dir / "runs", opts=dataclasses.replace(opts, skip={}), limit=limit,
                          run_name=name, resume=resume)
        except BaseException:
            _say(f"stopped at {detector} rho={rho:g}; finished radii are kept under {out_dir / 'runs'}. "
                 "Run the same command again to resume.")
            raise
        rows.append(_row(results, detector, rho, proto.primary, "ran"))
    frame = pd.DataFrame(rows)
    # Relative to the sweep's folder, so the CSV carries no machine path and survives moving the folder.
    frame["run_dir"] = [os.path.relpath(p, out_dir) for p in frame["run_dir"]]
    summary = cor_summary(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "sweep.csv", index=False, float_format="%.6g")
    drawn = points(frame, out_dir)
    drawn.to_csv(out_dir / "points.csv", index=False, float_format="%.6g")
    (out_dir / "cor.json").write_text(json.dumps({"protocol": proto.name, "primary": proto.primary, "seeds": seeds,
                                                  "detectors": summary}, indent=2) + "\n")
    plot_sweep(drawn, out_dir / "sweep.png", proto.primary, summary,
               title=f"{proto.name}: SAM radius sweep, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return frame
