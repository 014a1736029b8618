"""Leaderboard build speed: 12 detectors × 3 seeds on ``synthetic_universal`` (17 test sets × 200 images).

Usage: ``python benchmarks/leaderboard_build.py [--detectors 12] [--seeds 3]``.
Writes results and predictions files (random scores, metrics computed from them) into a temporary
leaderboard, then times the statistics (``render``: every table with its bootstrap intervals, paired
tests and rank intervals: 10,000 resamples for the primary metric, 2,000 for the other cells) and the
full ``build`` (pages, index.json, figures and the site). CPU time is printed beside wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.leaderboard import build, render
from bench.metrics import compute_metrics, group_means
from bench.protocol import load_protocol


def write_board(lb: Path, detectors: int, seeds: int, n: int = 100) -> None:
    """One result + predictions file per detector and seed, consistent with each other."""
    proto = load_protocol("synthetic_universal")
    rng = np.random.default_rng(0)
    for d in range(detectors):
        for seed in range(seeds):
            reals = rng.normal(size=n)
            frames = []
            for test in proto.test:
                ids = [f"test/{test}/{label}/{k:06d}" for label in (0, 1) for k in range(n)]
                scores = np.round(np.r_[reals, rng.normal(0.3 + 0.05 * d, 1.0, n)], 5)
                frames.append(pd.DataFrame({"test_set": test, "index": range(2 * n), "source": "synth", "id": ids,
                                            "subset": test, "group": ids, "label": [0] * n + [1] * n,
                                            "score": scores}))
            frame = pd.concat(frames)
            metrics = {t: compute_metrics(p["label"], p["score"], proto.metrics) for t, p in frame.groupby("test_set")}
            run_id = f"20260101-00000{seed}-s{seed}"
            result = {"schema_version": 2, "run_id": run_id, "status": "complete", "partial": False, "seed": seed,
                      "protocol": {"name": proto.name, "version": proto.version, "sha256": proto.sha256(),
                                   "primary": proto.primary, "metrics": proto.metrics, "tests": list(proto.test),
                                   "groups": proto.groups, "definition": proto.model_dump(mode="json")},
                      "detector": {"name": f"detector_{d:02d}", "config_sha256": f"{d:064d}", "params_trainable": 1},
                      "origin": {"kind": "protocol", "rankable": True, "reasons": []},
                      "metrics": metrics, "groups": group_means(metrics, proto.groups),
                      "command": f"bench run --protocol synthetic_universal --detector detector_{d:02d}"}
            folder = lb / "results" / proto.name / f"detector_{d:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{run_id}.json").write_text(json.dumps(result))
            frame.to_csv(folder / f"{run_id}.predictions.csv.gz", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lb = Path(tmp) / "leaderboard"
        write_board(lb, args.detectors, args.seeds)
        start, cpu = time.perf_counter(), time.process_time()
        render(lb)
        statistics, statistics_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        build(lb, html=Path(tmp) / "site")
        full, full_cpu = time.perf_counter() - start, time.process_time() - cpu
    runs = args.detectors * args.seeds
    # CPU time beside wall time: on a shared machine the wall clock also counts other jobs.
    print(f"{runs} runs x 17 test sets: statistics {statistics:.1f} s wall "
          f"({statistics_cpu:.1f} s CPU); full build with figures and site {full:.1f} s wall ({full_cpu:.1f} s CPU)")


if __name__ == "__main__":
    main()
