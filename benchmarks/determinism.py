"""Does a detector give the same numbers twice? Two runs per detector at one seed and one thread count.

Usage: python benchmarks/determinism.py [--detectors gend,rine] [--protocol synthetic_universal]
       [--threads 2] [--limit 40] [--batch-size 16]
Each run is a fresh `bench run` process without the feature cache (so the second run computes every
feature again); the two runs' test predictions are compared by the sha256 that results.json records (the
predictions files hold scores to 6 significant digits), and the primary metric is printed for both.
The runs are partial (``--limit`` images per class and split): quick, and enough to expose an order-dependent
reduction. A committed leaderboard row is a fact only if its detector prints "same" here at the thread count
it ran with. Exits 1 when any detector differs or fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from bench.plugin.registry import DETECTORS


def one_run(out: Path, name: str, args: argparse.Namespace, detector: str) -> tuple[dict, float]:
    start = time.perf_counter()
    # One run name in two output folders: predictions record their run's name, so the hashes compare scores.
    command = [sys.executable, "-m", "bench", "run", "--protocol", args.protocol, "--detector", detector,
               "--out", str(out / name), "--run-name", "r", "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--no-cache"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    subprocess.run(command, check=True, capture_output=True)
    return json.loads((out / name / args.protocol / detector / "r" / "results.json").read_text()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", default=",".join(sorted(DETECTORS.names())))
    parser.add_argument("--protocol", default="synthetic_universal")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0: the runner's default)")
    parser.add_argument("--limit", type=int, default=40, help="images per class and split (small keeps it quick)")
    parser.add_argument("--batch-size", type=int, default=16, help="below --limit (SBI trains on the reals alone)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for detector in args.detectors.split(","):
            try:
                (first, t1), (second, t2) = (one_run(Path(tmp), f"{detector}-{i}", args, detector) for i in (1, 2))
            except subprocess.CalledProcessError as err:
                last = (err.stderr.decode().strip().splitlines() or [f"exit status {err.returncode}"])[-1]
                rows.append((detector, "run failed: " + last, None, None, None))
                continue
            metric, group = first["protocol"]["primary"].split("@")
            same = first["predictions_sha256"] == second["predictions_sha256"]
            rows.append((detector, "same" if same else "DIFFERENT", first["groups"][group][metric],
                         second["groups"][group][metric], (t1 + t2) / 2))
            print(*rows[-1], sep="\t", file=sys.stderr, flush=True)  # progress
    print(tabulate(rows, headers=["detector", "predictions", "primary run 1", "primary run 2", "seconds per run"],
                   floatfmt=".4f"))
    print(f"protocol {args.protocol}, --limit {args.limit}, threads {args.threads or 'default'}, no feature cache")
    sys.exit(0 if all(row[1] == "same" for row in rows) else 1)


if __name__ == "__main__":
    main()
