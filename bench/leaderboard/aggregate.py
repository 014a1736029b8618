"""Runs → tables: one per protocol version, rows per detector config, cells with intervals, ranks with intervals.

A row is (detector, config sha256, how the runs were made) over its seeds (each seed once). Its cells
hold the mean over seeds (:mod:`bench.leaderboard.rows`); every statistic — intervals, Monte Carlo
errors, paired tests, Holm, rank intervals, the rows that could be first — comes from
:mod:`bench.leaderboard.stats` on the resamples of :class:`bench.leaderboard.resample.Resampler`.
Rows trained under the protocol with nothing skipped are ranked; the others are listed apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.data.distinct import distinct_counts, pixel_context, synthetic_sources
from bench.leaderboard.collect import LeaderboardError, Run, row_kind
from bench.leaderboard.consistency import read_predictions_file
from bench.leaderboard.definitions import definition_of
from bench.leaderboard.resample import Resampler
from bench.leaderboard.rows import cell, entry_base, provenance, seeds_in_order, stored_keys, stored_values
from bench.leaderboard.stats import ALPHA, CELL_RESAMPLES, EPS, LEVEL, RESAMPLES, SEED, Ranking, rank
from bench.leaderboard.temporal import rounds_of, thresholds_by_test
from bench.metrics import DEPLOYMENT_METRICS, HIGHER_IS_BETTER

#: Metrics that depend on more than the test scores (a result that predates them cannot get them later).
_NEEDS_RUN = {"acc_val_thr"}


@dataclass
class Table:
    """One protocol version: its description, ranked and unranked rows, and what pictures and reports need."""

    data: dict[str, Any]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # Run.key -> predictions
    runs: dict[str, Run] = field(default_factory=dict)
    definition: dict[str, Any] | None = None
    ranking: Ranking | None = None
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # row id -> primary replicates


def tables(runs: list[Run], resamples: int = RESAMPLES, unpublished: set[str] | None = None) -> dict[str, list[Table]]:
    """``{protocol name: [Table per version, newest first]}``; runs whose key is in ``unpublished`` are marked so."""
    by_version: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        by_version.setdefault((run.protocol["name"], run.protocol["version"]), []).append(run)
    out: dict[str, list[Table]] = {}
    with threadpool_limits(1):  # many small matrix products: BLAS threads would only wait for each other
        for (name, version), members in sorted(by_version.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
            out.setdefault(name, []).append(table(members, resamples, unpublished or set()))
    return out


def row_id(entry: dict[str, Any]) -> str:
    """A row's key in a table: detector, config hash and how it was made (and whether it is published)."""
    return "|".join([entry["detector"], entry["config_sha256"], entry["origin"]["kind"], *entry["origin"]["reasons"],
                     "" if entry.get("published", True) else "unpublished"])


def table(members: list[Run], resamples: int = RESAMPLES, unpublished: set[str] | None = None) -> Table:
    """The table of one protocol version's runs."""
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
    names = list(dict.fromkeys([*(proto.get("metrics") or [metric]), *DEPLOYMENT_METRICS]))
    sampler = Resampler(frames, list(proto["tests"]), definition, resamples)
    grouped: dict[tuple, list[Run]] = {}
    for run in members:
        mark = "unpublished" if run.key in (unpublished or set()) else ""
        grouped.setdefault((run.detector["name"], run.detector["config_sha256"], row_kind(run.result), mark), []).append(run)
    tb = Table({}, frames, {r.key: r for r in members}, definition)
    entries = []
    for (_, _, _, mark), runs in sorted(grouped.items()):
        entry, replicates = _entry(seeds_in_order(runs), proto, names, (metric, target), sampler, frames, definition)
        entry["published"] = not mark
        if replicates is not None:
            tb.replicates[row_id(entry)] = replicates
        entries.append(entry)
    sign = -1.0 if HIGHER_IS_BETTER[metric] else 1.0
    entries.sort(key=lambda e: (sign * e["primary"]["mean"], e["detector"], e["config_sha256"], not e["published"]))
    ranked = [e for e in entries if e["origin"]["rankable"]]
    tb.ranking = _rank(ranked, tb.replicates, HIGHER_IS_BETTER[metric])
    data = {k: proto[k] for k in ("name", "version", "sha256", "primary", "tests", "groups")}
    if rounds_of(first.result) is not None:  # a temporal protocol: its page lays the rounds out
        data["rounds"] = rounds_of(first.result)
    data.update(metric=metric, target=target, metrics=names, higher_is_better=HIGHER_IS_BETTER[metric])
    shared = sampler.design.shared()
    mc = [v.mc_error for v in tb.ranking.verdicts.values()] if tb.ranking else []
    data["bootstrap"] = {"resamples": resamples, "cell_resamples": min(CELL_RESAMPLES, resamples), "seed": SEED,
                         "level": LEVEL, "alpha": ALPHA,
                         "seeds": "fixed", "multiplicity": "holm within each row's comparisons",
                         "shared_real_pools": any(k.endswith("reals") for k in shared),
                         "shared_fake_pools": any(k.endswith("fakes") for k in shared),
                         "shared": shared, "video_units": sampler.design.videos,
                         "mc_error_primary": max((e["primary"]["mc_error"] or 0.0 for e in entries), default=0.0),
                         "mc_error_bounds": max((c["mc_error"] or 0.0 for e in entries for c in _cells(e)), default=0.0),
                         "mc_error_p": round(max(mc, default=0.0), 5)}
    data["pairs"] = _pairs(tb.ranking, {row_id(e): e for e in ranked})
    data["provenance"] = provenance(members)
    data["entries"] = ranked
    data["unranked"] = [e for e in entries if not e["origin"]["rankable"]]
    tb.data = data
    return tb


def _pairs(ranking: Ranking | None, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tested pair for index.json: a above b, a - b with its 95% interval, raw p, Holm p in each row's family."""
    out = []
    for p in ranking.pairs if ranking else []:
        a, b = rows[p.a], rows[p.b]
        out.append({"a": a["detector"], "a_config": a["config_sha256"][:12], "b": b["detector"],
                    "b_config": b["config_sha256"][:12], "diff": round(p.diff, 5), "lo": round(p.lo, 4),
                    "hi": round(p.hi, 4), "p": _p(p.p), "p_holm_a": _p(ranking.verdicts[p.a, p.b].p_holm),
                    "p_holm_b": _p(ranking.verdicts[p.b, p.a].p_holm)})
    return out


def _cells(entry: dict[str, Any]):
    for section in ("metrics", "groups"):
        for values in entry[section].values():
            yield from (c for c in values.values() if c)


def _rank(ranked: list[dict[str, Any]], replicates: dict[str, np.ndarray], higher: bool) -> Ranking | None:
    """Point ranks for every ranked row; rank intervals, p vs the top and marks for those with predictions."""
    for i, e in enumerate(ranked):  # equal means share a rank: 1, 2, 2, 4
        tied = i > 0 and abs(e["primary"]["mean"] - ranked[i - 1]["primary"]["mean"]) <= EPS
        e["rank"] = ranked[i - 1]["rank"] if tied else i + 1
    tested = {row_id(e): replicates[row_id(e)][1:] for e in ranked if row_id(e) in replicates}
    out = rank(tested, {row_id(e): e["primary"]["mean"] for e in ranked}, higher) if tested else None
    top = next((row_id(e) for e in ranked if row_id(e) in tested), None)
    untested = len(ranked) - len(tested)
    for e in ranked:
        key = row_id(e)
        if out is None or key not in tested:
            e.update(rank_interval=None, could_be_first=None, p_vs_top=None, p_vs_top_holm=None, borderline=None)
            continue
        lo, hi = out.interval[key]
        pair, verdict = (out.pair(top, key), out.verdicts[key, top]) if key != top else (None, None)
        e.update(rank_interval=[lo, hi + untested], could_be_first=out.could_be_first[key],
                 p_vs_top=_p(pair.p) if pair else None, p_vs_top_holm=_p(verdict.p_holm) if verdict else None,
                 borderline=out.borderline[key])
    return out


def _p(value: float) -> float:
    """A p-value for index.json: 3 significant digits (tiny ones stay tiny, never rounded to 0)."""
    return float(f"{value:.3g}")


def _entry(runs: list[Run], proto: dict[str, Any], names: list[str], primary: tuple[str, str], sampler: Resampler,
           frames: dict[str, pd.DataFrame], definition: dict[str, Any] | None,
           cell_resamples: int = CELL_RESAMPLES) -> tuple[dict[str, Any], np.ndarray | None]:
    """One row: one detector config (and origin) aggregated over its seeds; and its primary replicates.

    The replicates are ``[1 + B]``: the observed mean over seeds, then one per resample.
    """
    tests, groups = list(proto["tests"]), dict(proto["groups"])
    boot = all(sampler.has(r.key, t) for r in runs for t in tests)
    thresholds = [thresholds_by_test(r.result) for r in runs]  # a temporal run's come from its rounds
    wanted = [m for m in names if m not in _NEEDS_RUN or all(v is not None for t in thresholds for v in t.values())]
    reps: dict[str, dict[str, list[np.ndarray]]] = {t: {} for t in tests}  # test -> metric -> per seed
    ranked = groups.get(primary[1], [primary[1]])  # the primary metric there gets every resample
    if boot:
        for run, threshold in zip(runs, thresholds):
            for test in tests:
                first = [primary[0]] if test in ranked else []
                found = sampler.metrics(run.key, test, first, threshold.get(test)) if first else {}
                rest = [m for m in wanted if m not in found]
                found.update(sampler.metrics(run.key, test, rest, threshold.get(test),
                                             min(cell_resamples, sampler.resamples)))
                for m, values in found.items():
                    reps[test].setdefault(m, []).append(values)
    cells: dict[str, dict[str, Any]] = {}
    replicates = None
    for name in [*tests, *groups]:
        section, members = ("groups", groups[name]) if name in groups else ("metrics", [name])
        cells[name] = {}
        keys = list(dict.fromkeys([*stored_keys(runs, section, name), *(reps[members[0]] if boot else [])]))
        for k in keys:
            per_seed = None
            if boot and all(k in reps[m] for m in members):
                width = min(len(v) for m in members for v in reps[m][k])  # fewer resamples where a member has fewer
                per_seed = np.mean([np.stack([v[:width] for v in reps[m][k]]) for m in members], axis=0)
            stored = stored_values(runs, section, name, k)
            if stored is None and per_seed is None:
                continue
            values, origin = (stored, "stored") if stored is not None else (per_seed[:, 0].tolist(), "predictions")
            mean_reps = per_seed[:, 1:].mean(axis=0) if per_seed is not None else None
            cells[name][k] = cell(values, mean_reps, origin)
            if (name, k) == (primary[1], primary[0]) and per_seed is not None:
                replicates = per_seed.mean(axis=0)
        for k in names:
            cells[name].setdefault(k, None)  # "not recorded": the results predate the metric
    if cells[primary[1]].get(primary[0]) is None:
        raise LeaderboardError(f"{runs[0].path} has no {primary[0]} for {primary[1]}; rerun it with this protocol.")
    return {
        **entry_base(runs), "intervals": "bootstrap" if boot else "none",
        "deterministic": _deterministic(runs, frames) if boot else None,
        "n": _counts(runs, tests, groups, frames if boot else {}, definition, sampler),
        "primary": cells[primary[1]][primary[0]], "groups": {g: cells[g] for g in groups},
        "metrics": {t: cells[t] for t in tests},
    }, replicates


def _deterministic(runs: list[Run], frames: dict[str, pd.DataFrame]) -> bool | None:
    """Whether every seed gave the same score to every image (None with one seed)."""
    if len(runs) < 2:
        return None
    scores = [frames[r.key].sort_values(["test_set", "index"])["score"].to_numpy(dtype=float) for r in runs]
    return all(len(s) == len(scores[0]) and np.array_equal(s, scores[0], equal_nan=True) for s in scores[1:])


def _counts(runs: list[Run], tests: list[str], groups: dict[str, list[str]], frames: dict[str, pd.DataFrame],
            definition: dict[str, Any] | None, sampler: Resampler) -> dict[str, dict[str, int] | None]:
    """Distinct images per class (and videos, and resampled units) of every test set and group.

    From the first seed's predictions (every seed scores the same images); without predictions,
    from the stored counts, where a group's are distinct only from results schema 3 on.
    """
    out: dict[str, dict[str, int] | None] = {}
    specs = (definition or {}).get("test") or {}
    if frames:
        frame = frames[runs[0].key]
        frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
        parts = {t: (p, pixel_context(specs.get(t))) for t, p in frame.groupby("test_set", sort=False)}
        synthetic = synthetic_sources((definition or {}).get("sources"))
        for name in [*tests, *groups]:
            members = groups.get(name, [name])
            counts = distinct_counts([parts[m] for m in members if m in parts], synthetic)
            units = sampler.design.unit_counts(members)
            out[name] = {**counts, "real_units": units["real"], "fake_units": units["fake"]}
        return out
    result = runs[0].result
    for name in [*tests, *groups]:
        stored = (result["groups"] if name in groups else result["metrics"]).get(name) or {}
        honest = name not in groups or int(result["schema_version"]) >= 3
        out[name] = {k: int(v) for k, v in stored.items() if k in ("n_real", "n_fake", "n_videos")} if honest else None
    return out
