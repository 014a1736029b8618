"""Wall time of one full run per detector × embedded protocol (target: ≤ 3 minutes each on 2 CPU cores).

Usage: python benchmarks/embedded_runs.py [--detectors clip_linear,univfd] [--repeats 1]
Each run is a fresh `bench run` process (imports and model loading included), seed 0.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROTOCOLS = ["synthetic_universal", "synthetic_cross_domain"]
TARGET_SECONDS = 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", default="clip_linear,univfd")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for detector in args.detectors.split(","):
            for protocol in PROTOCOLS:
                times, result = [], None
                for repeat in range(args.repeats):
                    name = f"r{repeat}"
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", protocol, "--detector",
                                    detector, "--out", out, "--run-name", name], check=True, capture_output=True)
                    times.append(time.perf_counter() - start)
                    result = json.loads((Path(out) / protocol / detector / name / "results.json").read_text())
                median = statistics.median(times)
                primary_metric, group = result["protocol"]["primary"].split("@")
                rows.append((detector, protocol, median, median / TARGET_SECONDS,
                             result["groups"]["in_domain"]["auc"], result["groups"][group][primary_metric]))
    print(f"{'detector':<12} {'protocol':<24} {'wall s':>7} {'/target':>8} {'in-domain AUC':>14} {'unseen AUC':>11}")
    for detector, protocol, seconds, ratio, in_domain, unseen in rows:
        print(f"{detector:<12} {protocol:<24} {seconds:7.1f} {ratio:8.2f} {in_domain:14.3f} {unseen:11.3f}")


if __name__ == "__main__":
    main()
