"""One leaderboard row: a detector config over its seeds, its cells, counts, cost and provenance.

A cell is the mean over the row's seeds of one metric on one test set or group. Its point value is
the stored one (every result stores the protocol's metrics); a metric a result predates (the
deployment metrics of schema 3) is computed from the stored predictions when it depends on the
test scores alone, and is ``None`` ("not recorded") otherwise. Intervals and the seed spread come
from :mod:`bench.leaderboard.stats`; a row whose runs have no predictions gets mean ± sample std
over seeds instead.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from bench.leaderboard.collect import LeaderboardError, Run, overrides_in_words
from bench.leaderboard.stats import bound_mc_error, interval, seed_spread
from bench.metrics import is_count
from bench.run.results import portable_command

_SEED_FLAGS = ("--seeds", "--seed", "--run-name")
_ROUND = 4  # bounds are stored to 4 decimals and shown to 3


def cell(values: list[float], replicates: np.ndarray | None, origin: str) -> dict[str, Any]:
    """One cell from the per-seed values and the replicates of their mean (None without predictions)."""
    spread = seed_spread(values)
    out = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
           "seed_min": spread[0] if spread else None, "seed_max": spread[1] if spread else None,
           "seeds": len(values), "lo": None, "hi": None, "mc_error": None, "from": origin}
    if replicates is not None:
        out["lo"], out["hi"] = (round(x, _ROUND) for x in interval(replicates))
        out["mc_error"] = round(bound_mc_error(replicates), 5)
    return out


def stored_values(runs: list[Run], section: str, name: str, metric: str) -> list[float] | None:
    """The metric as each run stored it, or None unless every run stored it; refuse a non-finite one."""
    values = [r.result[section].get(name, {}).get(metric) for r in runs]
    if any(v is None for v in values):
        return None
    numbers = [float(v) for v in values]
    if not all(np.isfinite(numbers)):
        bad = next(r for r, v in zip(runs, numbers) if not np.isfinite(v))
        raise LeaderboardError(f"{bad.path} has a non-finite {metric} for {name}; a table never shows NaN, "
                               "so rerun that run with the current bench.")
    return numbers


def stored_keys(runs: list[Run], section: str, name: str) -> list[str]:
    """Metric keys any run stored for a test set or group (counts excluded)."""
    return list(dict.fromkeys(k for r in runs for k in r.result[section].get(name, {}) if not is_count(k)))


def cost(runs: list[Run]) -> dict[str, Any]:
    """Parameters, GFLOPs per image, median fit time and predict throughput over seeds, and the devices.

    Schema 3 records ``cost``; older results give parameters, fit time and throughput (test images
    over the recorded predict time) and leave GFLOPs ``None``. Throughput from cached features is
    not a forward pass, so such seeds are left out of it (``None`` when every seed was cached).
    """
    det = runs[0].detector
    fits, speeds, devices, gflops, cached = [], [], set(), None, False
    for run in runs:
        r, recorded = run.result, run.result.get("cost") or {}
        timing = r.get("timing") or {}
        if timing.get("fit_seconds") is not None:
            fits.append(float(timing["fit_seconds"]))
        gflops = recorded.get("gflops_per_image", gflops)
        tests = list(r["protocol"]["tests"])
        images = sum(int(r["metrics"].get(t, {}).get("n_real", 0)) + int(r["metrics"].get(t, {}).get("n_fake", 0))
                     for t in tests)
        hits = sum(int(((r.get("runner") or {}).get("feature_cache") or {}).get("splits", {}).get(t, {}).get("hits", 0))
                   for t in tests)
        seconds = timing.get("predict_seconds")
        if hits:
            cached = True
        elif seconds:
            speeds.append(images / float(seconds))
        env = r.get("env") or {}
        cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
        devices.add(recorded.get("device") or f"{env.get('device') or 'unknown'} ({cpu.get('model') or 'unknown'})")
    return {"params_total": det.get("params_total"), "params_trainable": det["params_trainable"],
            "gflops_per_image": gflops, "fit_seconds": statistics.median(fits) if fits else None,
            "predict_images_per_second": statistics.median(speeds) if speeds else None,
            "predict_cached": cached and not speeds, "devices": sorted(devices)}


def entry_base(runs: list[Run]) -> dict[str, Any]:
    """What a row says about who made it and how to rerun it (every seed's run, sorted by seed)."""
    det, origin = runs[0].detector, runs[0].origin
    thresholds = [(r.result.get("threshold") or {}).get("value") for r in runs]
    return {
        "detector": det["name"], "config_sha256": det["config_sha256"], "version": det.get("version"),
        "distribution": det.get("distribution"), "overrides": runs[0].overrides,
        "overrides_text": overrides_in_words(runs[0].overrides),
        "params_trainable": det["params_trainable"], "params_total": det.get("params_total"),
        "seeds": [r.result["seed"] for r in runs], "run_ids": [r.result["run_id"] for r in runs],
        "origin": {"kind": origin["kind"], "rankable": origin["rankable"], "reasons": origin["reasons"]},
        "val_thresholds": thresholds if all(t is not None for t in thresholds) else None,
        "code": sorted({_code(r.result.get("env") or {}) for r in runs}),
        "command": reproduce_command(runs), "cost": cost(runs),
    }


def seeds_in_order(runs: list[Run]) -> list[Run]:
    """The row's runs sorted by seed; two runs of one seed are refused."""
    seeds: dict[Any, Run] = {}
    for run in runs:
        if run.result["seed"] in seeds:
            raise LeaderboardError(
                f"{seeds[run.result['seed']].path} and {run.path} are both seed {run.result['seed']} of "
                f"{run.detector['name']}; a seed counts once, so remove one of them."
            )
        seeds[run.result["seed"]] = run
    return [seeds[s] for s in sorted(seeds)]


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


def provenance(members: list[Run]) -> dict[str, Any]:
    """Files, predictions, code versions, devices, CPUs and dates of a table's runs."""
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
