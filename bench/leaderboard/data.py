"""Results as data: runs and predictions as pandas DataFrames, and ``bench leaderboard export``.

``path`` may be a leaderboard directory (``results/<protocol>/<detector>/*.json``), one run directory,
or any folder holding run directories (``runs/``). One row per run × target × metric::

    protocol, protocol_version, protocol_sha256, detector, config_sha256, detector_version,
    distribution, seed, run_id, partial, origin, rankable, target, target_kind, metric, value,
    n_real, n_fake

``target`` is a test set (``target_kind`` "test") or a group ("group": unweighted mean of its test
sets); counts (``n_real``, ``n_fake``) are columns, not metrics.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.leaderboard.collect import LeaderboardError, Run, load_dir, load_run_dir
from bench.leaderboard.consistency import read_predictions_file
from bench.metrics import is_count

RUN_COLUMNS = ["protocol", "protocol_version", "protocol_sha256", "detector", "config_sha256", "detector_version",
               "distribution", "seed", "run_id", "partial", "origin", "rankable"]
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
    return {"protocol": proto["name"], "protocol_version": proto["version"], "protocol_sha256": proto["sha256"],
            "detector": det["name"], "config_sha256": det["config_sha256"], "detector_version": det.get("version"),
            "distribution": det.get("distribution"), "seed": r["seed"], "run_id": r["run_id"],
            "partial": bool(r["partial"]), "origin": origin["kind"], "rankable": origin["rankable"]}


def read_runs(path: str | Path = "leaderboard") -> pd.DataFrame:
    """Every stored metric as a long DataFrame (columns :data:`COLUMNS`), one row per run × target × metric.

    Example: ``read_runs("leaderboard").query("metric == 'auc' and target == 'unseen'")``.
    """
    rows = []
    for run in _runs(path):
        base = _run_columns(run)
        for kind, section in (("test", "metrics"), ("group", "groups")):
            for target, values in run.result[section].items():
                for metric, value in values.items():
                    if not is_count(metric):
                        rows.append({**base, "target": target, "target_kind": kind, "metric": metric,
                                     "value": float(value), "n_real": values.get("n_real"),
                                     "n_fake": values.get("n_fake")})
    return pd.DataFrame(rows, columns=COLUMNS)


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
