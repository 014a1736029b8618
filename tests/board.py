"""Leaderboard fixtures: results.json dicts and predictions whose metrics agree, written in either layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import TINY_PROTOCOL

from bench.metrics import compute_metrics, group_means
from bench.protocol import parse_protocol

TINY = parse_protocol(TINY_PROTOCOL.format(name="tiny"), "tiny.yaml")
TESTS = list(TINY.test)
N = 40  # reals and fakes per test set


def predictions(separation: float, seed: int, tests=TESTS, n: int = N, noise_seed: int | None = None) -> pd.DataFrame:
    """Scores of a detector whose fakes sit ``separation`` logits above the reals, per test set.

    Reals are the same synthetic crops in every test set (ids ``test/<subset>/0/k``), as on the
    ``synthetic`` source; a real's score depends only on k, so test sets share their real pool.
    """
    rng = np.random.default_rng(seed if noise_seed is None else noise_seed)
    reals = rng.normal(0.0, 1.0, n)
    frames = []
    for i, test in enumerate(tests):
        fakes = rng.normal(separation * (1 + 0.2 * i), 1.0, n)
        ids = [f"test/{test}/0/{k:06d}" for k in range(n)] + [f"test/{test}/1/{k:06d}" for k in range(n)]
        frames.append(pd.DataFrame({"index": range(2 * n), "source": "synth", "id": ids, "subset": test,
                                    "group": ids, "label": [0] * n + [1] * n,
                                    "score": np.round(np.r_[reals, fakes], 5), "test_set": test}))
    return pd.concat(frames, ignore_index=True)


def make_result(detector="clip_linear", seed=0, separation=1.0, frame=None, **over) -> dict:
    """A schema-1 results.json of the tiny protocol whose metrics are those of ``frame``'s scores.

    Rows without a score (images a run skipped) are left out of the metrics, as the runner does.
    """
    frame = predictions(separation, seed) if frame is None else frame
    metrics = {t: compute_metrics(p["label"], p["score"], TINY.metrics, where=t)
               for t, p in frame.dropna(subset=["score"]).groupby("test_set", sort=False)}
    result = {
        "schema_version": 1, "run_id": f"20261125-17300{seed}-s{seed}", "status": "complete", "partial": False,
        "partial_reasons": [],
        "protocol": {"name": "tiny", "version": 1, "sha256": TINY.sha256(), "primary": TINY.primary,
                     "metrics": TINY.metrics, "tests": TESTS, "groups": TINY.groups},
        "detector": {"name": detector, "version": "1", "paper": None, "distribution": "forgery-bench 0.1.0",
                     "config": {}, "config_sha256": "c" * 64, "params_total": 3_400_000, "params_trainable": 1281},
        "seed": seed, "selection": {"rule": "best:auc", "epoch": 2},
        "metrics": metrics, "groups": group_means(metrics, TINY.groups),
        "skipped_images": {"count": 0, "ids": {}},
        "runner": {"eval_only": False, "checkpoint": None},
        "env": {"bench": "0.1.0", "git_sha": "abc1234", "git_dirty": False, "device": "cpu", "num_processes": 1},
        "timing": {"started_at": f"2026-11-2{seed}T17:30:00+00:00"},
        "command": f"bench run --protocol tiny --detector {detector} --seeds {seed} --out /data/runs",
    }
    result.update(over)
    return result


def commit(lb: Path, result: dict, frame: pd.DataFrame | None = None) -> Path:
    """Place a result (and its predictions) in a leaderboard directory as ``submit`` would."""
    path = lb / "results" / result["protocol"]["name"] / result["detector"]["name"] / f"{result['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    if frame is not None:
        columns = ["test_set", "index", "source", "id", "subset", "group", "label", "score"]
        frame[columns].to_csv(path.with_name(f"{result['run_id']}.predictions.csv.gz"), index=False)
    return path


def write_run_dir(root: Path, result: dict, frame: pd.DataFrame, config: bool = True, labelled: bool = True) -> Path:
    """A run directory as ``bench run`` writes it: results.json, config.yaml, predictions/<test>.csv.gz.

    ``labelled`` files carry ``test_set, seed, run_id`` after the score (schema 2); others do not (schema 1).
    """
    run = root / result["protocol"]["name"] / result["detector"]["name"] / result["run_id"]
    (run / "predictions").mkdir(parents=True)
    for test, part in frame.groupby("test_set", sort=False):
        part = part.drop(columns="test_set")
        if labelled:
            part = part.assign(test_set=test, seed=result["seed"], run_id=result["run_id"])
        with gzip.open(run / "predictions" / f"{test}.csv.gz", "wt", newline="") as fh:
            part.to_csv(fh, index=False)
    if config:
        import yaml

        (run / "config.yaml").write_text(yaml.safe_dump({"protocol": TINY.model_dump(mode="json")}))
    (run / "results.json").write_text(json.dumps(result))
    return run


def board(lb: Path, rows: dict[str, float], seeds=(0, 1, 2), with_predictions=True) -> Path:
    """A leaderboard with one row per ``{detector: separation}``, each over ``seeds``."""
    for d, (detector, separation) in enumerate(rows.items()):
        for seed in seeds:
            frame = predictions(separation, seed, noise_seed=100 * d + seed)
            commit(lb, make_result(detector, seed, frame=frame), frame if with_predictions else None)
    return lb
