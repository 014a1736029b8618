"""Runs → tables: one per protocol version, rows per detector config, cells with intervals, tie marks.

A row is (detector, config sha256, how the runs were made) over its seeds (each seed once). Its cells
hold the mean over seeds of the stored metrics, the sample std over seeds, and a 95% interval from a
two-level bootstrap when every seed has stored predictions (see :mod:`bench.leaderboard.resample`
and :func:`bench.leaderboard.stats.pool_seeds`). Rows trained under the protocol with nothing
skipped are ranked; the others are listed apart, with their reasons.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.leaderboard.collect import LeaderboardError, Run, overrides_in_words, row_kind
from bench.leaderboard.consistency import read_predictions_file
from bench.leaderboard.definitions import definition_of
from bench.leaderboard.resample import bootstrap
from bench.leaderboard.stats import ALPHA, LEVEL, RESAMPLES, SEED, interval, p_not_below, pool_seeds
from bench.metrics import HIGHER_IS_BETTER, is_count
from bench.run.results import portable_command

_SEED_FLAGS = ("--seeds", "--seed", "--run-name")


@dataclass
class Table:
    """One protocol version: its description, ranked and unranked rows, and what the pictures need."""

    data: dict[str, Any]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # Run.key -> predictions
    runs: dict[str, Run] = field(default_factory=dict)
    definition: dict[str, Any] | None = None


def tables(runs: list[Run], resamples: int = RESAMPLES) -> dict[str, list[Table]]:
    """``{protocol name: [Table per version, newest first]}``."""
    by_version: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        by_version.setdefault((run.protocol["name"], run.protocol["version"]), []).append(run)
    out: dict[str, list[Table]] = {}
    for (name, version), members in sorted(by_version.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        out.setdefault(name, []).append(_table(members, resamples))
    return out


def _table(members: list[Run], resamples: int) -> Table:
    first, proto = members[0], members[0].protocol
    for run in members[1:]:
        if run.protocol["sha256"] != proto["sha256"]:
            shas = f"{proto['sha256'][:12]} vs {run.protocol['sha256'][:12]}"
            raise LeaderboardError(
                f"{first.path} and {run.path} are both protocol {proto['name']} v{proto['version']} but their "
                f"sha256 differ ({shas}); bump the protocol version when its content changes, or rerun the older result."
            )
    metric, _, target = str(proto["primary"]).partition("@")
    if metric not in HIGHER_IS_BETTER or target not in [*proto["groups"], *proto["tests"]]:
        raise LeaderboardError(f"{first.path} has primary {proto['primary']!r}; use metric@group or metric@test "
                               f"({', '.join(HIGHER_IS_BETTER)}).")
    definition = next((d for d in [definition_of(r.result) for r in members] if d), None)
    frames = {r.key: read_predictions_file(r.predictions, r.result) for r in members if r.predictions}
    names = list(dict.fromkeys(proto.get("metrics") or [metric]))
    reps, design = bootstrap(frames, list(proto["tests"]), names, definition, resamples)
    rows: dict[tuple[str, str, str], list[Run]] = {}
    for run in members:
        rows.setdefault((run.detector["name"], run.detector["config_sha256"], row_kind(run.result)), []).append(run)
    entries = [_entry(rs, proto, metric, target, reps) for _, rs in sorted(rows.items())]
    sign = -1.0 if HIGHER_IS_BETTER[metric] else 1.0
    entries.sort(key=lambda e: (sign * e["primary"]["mean"], e["detector"], e["config_sha256"]))
    ranked = [e for e in entries if e["origin"]["rankable"]]
    for i, e in enumerate(ranked):  # equal means share a rank: 1, 2, 2, 4
        tied = i > 0 and e["primary"]["mean"] == ranked[i - 1]["primary"]["mean"]
        e["rank"] = ranked[i - 1]["rank"] if tied else i + 1
    _mark_ties(ranked, HIGHER_IS_BETTER[metric])
    for e in entries:
        e.pop("_replicates")
    data = {k: proto[k] for k in ("name", "version", "sha256", "primary", "tests", "groups")}
    data.update(metric=metric, target=target, metrics=names, higher_is_better=HIGHER_IS_BETTER[metric])
    data["bootstrap"] = {"resamples": resamples, "seed": SEED, "level": LEVEL, "alpha": ALPHA,
                         "shared_real_pools": any(k.endswith("reals") for k in design.shared()),
                         "shared_fake_pools": any(k.endswith("fakes") for k in design.shared()),
                         "shared": design.shared(), "video_units": design.videos}
    data["provenance"] = _provenance(members)
    data["entries"] = [{"rank": e.pop("rank"), **e} for e in ranked]
    data["unranked"] = [e for e in entries if not e["origin"]["rankable"]]
    return Table(data, frames, {r.key: r for r in members}, definition)


def _mark_ties(ranked: list[dict[str, Any]], higher: bool) -> None:
    """Mark rows not significantly below the top row (paired one-sided bootstrap, α = ALPHA)."""
    top = ranked[0]["_replicates"] if ranked else None
    for i, e in enumerate(ranked):
        if i == 0:
            e["tied_for_first"], e["p_vs_top"] = True, None
        elif top is None or e["_replicates"] is None:
            e["tied_for_first"], e["p_vs_top"] = None, None  # not testable without predictions
        else:
            p = p_not_below(top, e["_replicates"], higher)
            e["tied_for_first"], e["p_vs_top"] = p >= ALPHA, round(p, 4)


def _entry(runs: list[Run], proto: dict[str, Any], metric: str, target: str,
           reps: dict[str, Any]) -> dict[str, Any]:
    """One row: one detector config (and origin) aggregated over its seeds."""
    seeds: dict[Any, Run] = {}
    for run in runs:
        if run.result["seed"] in seeds:
            raise LeaderboardError(
                f"{seeds[run.result['seed']].path} and {run.path} are both seed {run.result['seed']} of "
                f"{run.detector['name']}; a seed counts once, so remove one of them."
            )
        seeds[run.result["seed"]] = run
    runs = [seeds[s] for s in sorted(seeds)]
    run_reps = [reps.get(r.key) for r in runs]
    boot = all(r is not None for r in run_reps)
    det = runs[0].detector
    key = (proto["name"], str(proto["version"]), det["name"], det["config_sha256"], runs[0].origin["kind"])
    tests, groups = list(proto["tests"]), dict(proto["groups"])
    cells: dict[str, dict[str, Any]] = {}
    replicate_of: dict[tuple[str, str], np.ndarray] = {}
    for name in [*tests, *groups]:
        source = "groups" if name in groups else "metrics"
        values = [r.result[source].get(name, {}) for r in runs]
        keys = dict.fromkeys(k for v in values for k in v if not is_count(k))
        cells[name] = {}
        for k in keys:
            numbers = [float(v[k]) for v in values if k in v]
            if not all(np.isfinite(numbers)):
                bad = next(r for r, v in zip(runs, values) if k in v and not np.isfinite(float(v[k])))
                raise LeaderboardError(f"{bad.path} has a non-finite {k} for {name}; a table never shows NaN, "
                                       "so rerun that run with the current bench.")
            stat = _stat(numbers)
            members = groups.get(name, [name])
            if boot and all(k in v for v in values) and all(k in rr.get(m, {}) for rr in run_reps for m in members):
                per_seed = np.stack([np.mean([rr[m][k] for m in members], axis=0) for rr in run_reps])
                pooled = pool_seeds(per_seed, *key, name, k)
                replicate_of[name, k] = pooled
                stat["lo"], stat["hi"] = (round(x, 4) for x in interval(pooled))
            cells[name][k] = stat
    primary = cells[target].get(metric)
    if primary is None:
        raise LeaderboardError(f"{runs[0].path} has no {metric} for {target}; rerun it with this protocol.")
    origin = runs[0].origin
    return {
        "detector": det["name"], "config_sha256": det["config_sha256"], "version": det.get("version"),
        "distribution": det.get("distribution"), "overrides": runs[0].overrides,
        "overrides_text": overrides_in_words(runs[0].overrides),
        "params_trainable": det["params_trainable"], "params_total": det.get("params_total"),
        "seeds": sorted(seeds), "run_ids": [r.result["run_id"] for r in runs],
        "origin": {"kind": origin["kind"], "rankable": origin["rankable"], "reasons": origin["reasons"]},
        "intervals": "bootstrap" if boot else "none",
        "code": sorted({_code(r.result.get("env") or {}) for r in runs}),
        "command": reproduce_command(runs),
        "primary": primary, "groups": {g: cells[g] for g in groups}, "metrics": {t: cells[t] for t in tests},
        "_replicates": replicate_of.get((target, metric)),
    }


def _stat(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "lo": None, "hi": None}


def _code(env: dict[str, Any]) -> str:
    dirty = " (dirty)" if env.get("git_dirty") else ""
    return f"git {env.get('git_sha') or 'unknown'}{dirty}, bench {env.get('bench') or 'unknown'}"


def reproduce_command(runs: list[Run]) -> str:
    """The command that reruns a row: its runs' own command with every seed, after installing a plugin."""
    commands: dict[str, list[int]] = {}
    for run in runs:
        words, skip = [], False
        for word in portable_command(str(run.result.get("command") or "")).split():
            if skip:
                skip = False
            elif word in _SEED_FLAGS or word == "--all-seeds":
                skip = word != "--all-seeds"
            elif not word.startswith(tuple(f"{f}=" for f in _SEED_FLAGS)):
                words.append(word)
        commands.setdefault(" ".join(words), []).append(run.result["seed"])
    parts = [f"{cmd} --seeds {','.join(map(str, seeds))}" for cmd, seeds in commands.items()]
    dist = str(runs[0].detector.get("distribution") or "")
    name, _, version = dist.rpartition(" ")
    install = f"pip install '{name}=={version}' && " if name and name != "forgery-bench" else ""
    return install + " && ".join(parts)


def _provenance(members: list[Run]) -> dict[str, Any]:
    envs = [r.result.get("env") or {} for r in members]
    dates = sorted(str((r.result.get("timing") or {}).get("started_at") or "")[:10] for r in members)
    cpus = set()
    for env in envs:
        cpu = env.get("cpu")
        if isinstance(cpu, dict):
            cpu = cpu.get("model") or cpu.get("name")
        if cpu:
            cpus.add(str(cpu))
    return {
        "files": len(members),
        "with_predictions": sum(r.predictions is not None for r in members),
        "git_shas": sorted({f"{e.get('git_sha')}{' (dirty)' if e.get('git_dirty') else ''}" for e in envs}),
        "bench_versions": sorted({str(e.get("bench")) for e in envs}),
        "devices": sorted({f"{e.get('device')} ×{e.get('num_processes') or 1}" for e in envs}),
        "cpus": sorted(cpus),
        "dates": [d for d in (dates[0], dates[-1]) if d],
    }
