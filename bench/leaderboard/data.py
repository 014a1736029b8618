"""Results as data: runs and predictions as pandas DataFrames, and ``bench leaderboard export``.

``path`` may be a leaderboard directory (``results/<protocol>/<detector>/*.json``), one run directory,
or any folder holding run directories (``runs/``). One row per run × target × metric::

    protocol, protocol_version, protocol_sha256, detector, config_sha256, detector_version,
    distribution, seed, run_id, partial, origin, rankable, device, target, target_kind, metric, value,
    n_real, n_fake

``target`` is a test set (``target_kind`` "test"), a group ("group": unweighted mean of its test
sets), or ``cost`` / ``val`` (``target_kind`` "run": parameters, GFLOPs, times and throughput; the
threshold chosen on validation). Counts (``n_real``, ``n_fake``: distinct images per class, an image
shared by several test sets of a group counted once) are columns, not metrics; a group of a result
older than schema 3 gets them from its stored predictions, or none without them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench.leaderboard.collect import LeaderboardError, Run, load_dir, load_run_dir
from bench.leaderboard.consistency import read_predictions_file
from bench.metrics import is_count

RUN_COLUMNS = ["protocol", "protocol_version", "protocol_sha256", "detector", "config_sha256", "detector_version",
               "distribution", "seed", "run_id", "partial", "origin", "rankable", "device"]
#: Cost numbers exported as metrics of the target ``cost``, when the result records them.
COST_KEYS = ["params_trainable", "params_total", "gflops_per_image", "fit_seconds", "predict_seconds",
             "predict_images_per_second", "predict_cached_share"]
COLUMNS = [*RUN_COLUMNS, "target", "target_kind", "metric", "value", "n_real", "n_fake"]


def _runs(path: str | Path) -> list[Run]:
    root = Path(path)
    if (root / "results").is_dir():
        return load_dir(root)
    if (root / "results.json").is_file() or root.is_file():
        return [load_run_dir(root, allow_partial=True)]
    found = sorted(root.rglob("results.json")) if root.is_dir() else []
    if not found:
        raise LeaderboardError(f"{root} holds no results: pass a leaderboard directory, a run directory, "
                               "or a folder of run directories.")
    return [load_run_dir(p.parent, allow_partial=True) for p in found]


def _run_columns(run: Run) -> dict[str, object]:
    r, det, proto, origin = run.result, run.detector, run.protocol, run.origin
    env = r.get("env") or {}
    cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
    device = (r.get("cost") or {}).get("device") or (f"{env['device']} ({cpu.get('model') or 'unknown'})"
                                                      if env.get("device") else None)
    return {"protocol": proto["name"], "protocol_version": proto["version"], "protocol_sha256": proto["sha256"],
            "detector": det["name"], "config_sha256": det["config_sha256"], "detector_version": det.get("version"),
            "distribution": det.get("distribution"), "seed": r["seed"], "run_id": r["run_id"],
            "partial": bool(r["partial"]), "origin": origin["kind"], "rankable": origin["rankable"], "device": device}


def group_counts(run: Run) -> dict[str, dict[str, int]] | None:
    """Distinct images per class (and videos) of every group: stored from schema 3, else from the predictions."""
    if int(run.result["schema_version"]) >= 3:
        return {g: {k: v for k, v in values.items() if is_count(k)} for g, values in run.result["groups"].items()}
    if run.predictions is None:
        return None
    from bench.data.distinct import distinct_counts, pixel_context, synthetic_sources
    from bench.leaderboard.collect import run_predictions_text
    from bench.leaderboard.consistency import predictions_frame
    from bench.leaderboard.definitions import definition_of

    tests = list(run.protocol["tests"])
    source = io.StringIO(run_predictions_text(run.predictions, tests)) if run.predictions.is_dir() else run.predictions
    frame = predictions_frame(source, run.predictions)
    frame = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
    definition = definition_of(run.result) or {}
    parts = {t: (p, pixel_context((definition.get("test") or {}).get(t))) for t, p in frame.groupby("test_set")}
    synthetic = synthetic_sources(definition.get("sources"))
    return {g: distinct_counts([parts[m] for m in members if m in parts], synthetic)
            for g, members in run.protocol["groups"].items()}


def read_runs(path: str | Path = "leaderboard") -> pd.DataFrame:
    """Every stored metric as a long DataFrame (columns :data:`COLUMNS`), one row per run × target × metric.

    Example: ``read_runs("leaderboard").query("metric == 'auc' and target == 'unseen'")``.
    """
    rows = []
    for run in _runs(path):
        base = _run_columns(run)
        counts = {"test": {t: v for t, v in run.result["metrics"].items()}, "group": group_counts(run) or {}}
        for kind, section in (("test", "metrics"), ("group", "groups")):
            for target, values in run.result[section].items():
                n = counts[kind].get(target) or {}
                for metric, value in values.items():
                    if not is_count(metric):
                        rows.append({**base, "target": target, "target_kind": kind, "metric": metric,
                                     "value": float(value), "n_real": n.get("n_real"), "n_fake": n.get("n_fake")})
        for target, values in _run_numbers(run).items():
            rows += [{**base, "target": target, "target_kind": "run", "metric": k, "value": float(v)}
                     for k, v in values.items() if v is not None]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"n_real": "Int64", "n_fake": "Int64"})


def _run_numbers(run: Run) -> dict[str, dict[str, float | None]]:
    """``cost`` (what the result records of it) and ``val`` (the threshold chosen on validation)."""
    r = run.result
    cost = dict(r.get("cost") or {})
    cost.setdefault("params_trainable", run.detector.get("params_trainable"))
    cost.setdefault("params_total", run.detector.get("params_total"))
    cost.setdefault("fit_seconds", (r.get("timing") or {}).get("fit_seconds"))
    threshold = r.get("threshold") or {}
    return {"cost": {k: cost.get(k) for k in COST_KEYS},
            "val": {"threshold": threshold.get("value"), "balanced_acc": threshold.get("balanced_acc")}}


def read_predictions(path: str | Path = "leaderboard", *, protocol: str | None = None,
                     detector: str | None = None, test_set: str | None = None) -> pd.DataFrame:
    """Per-image scores with the run they belong to, optionally filtered.

    Columns: ``protocol, detector, seed, run_id, test_set, index, source, id, subset, group, label,
    score`` (``score`` is a logit, > 0 means fake; empty for an image the run skipped). Runs without
    stored predictions contribute nothing.
    """
    frames = []
    for run in _runs(path):
        meta = _run_columns(run)
        if run.predictions is None or (protocol and meta["protocol"] != protocol) or (
                detector and meta["detector"] != detector):
            continue
        frame = read_predictions_file(run.predictions, run.result)
        if test_set is not None:
            frame = frame[frame["test_set"] == test_set]
        extra = [c for c in ("protocol", "detector", "seed", "run_id") if c in frame.columns]
        frame = frame.drop(columns=extra)
        frames.append(frame.assign(protocol=meta["protocol"], detector=meta["detector"], seed=meta["seed"],
                                   run_id=meta["run_id"]))
    first = ["protocol", "detector", "seed", "run_id", "test_set"]
    if not frames:
        return pd.DataFrame(columns=[*first, "index", "source", "id", "subset", "group", "label", "score"])
    out = pd.concat(frames, ignore_index=True)
    return out[first + [c for c in out.columns if c not in first]]


def export(path: str | Path, out: str | Path) -> Path:
    """Write :func:`read_runs` of ``path`` to ``out`` (``.csv``, ``.csv.gz`` or ``.parquet``); return ``out``."""
    out = Path(out)
    frame = read_runs(path)
    if out.suffix == ".parquet":
        try:
            frame.to_parquet(out, index=False)
        except ImportError:
            raise LeaderboardError(f"Writing {out} needs pyarrow; `pip install pyarrow`, or export to .csv.") from None
    elif out.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(out, index=False)
    else:
        raise LeaderboardError(f"{out} has an unknown format; end it in .csv, .csv.gz or .parquet.")
    return out
