"""How much the EER convention matters: interpolated (ours) vs DeepfakeBench's nearest ROC point.

Reads every stored prediction file under the leaderboard (one per run) and prints, per protocol,
the largest and median absolute difference between the two EER definitions over all runs × test
sets. Ours interpolates linearly where FNR = FPR; DeepfakeBench takes the FPR of the ROC point
where |FNR − FPR| is smallest.

Usage: ``python benchmarks/eer_conventions.py [--leaderboard leaderboard]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from bench.metrics import equal_error_rate


def nearest_point_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """DeepfakeBench's EER: the FPR of the ROC point where |FNR − FPR| is smallest."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(fpr[np.nanargmin(np.abs((1 - tpr) - fpr))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaderboard", default="leaderboard")
    args = parser.parse_args()
    rows = []
    for path in sorted(Path(args.leaderboard, "results").glob("*/*/*.predictions.csv.gz")):
        frame = pd.read_csv(path).dropna(subset=["score"])
        for test_set, part in frame.groupby("test_set"):
            y, s = part["label"].to_numpy(), part["score"].to_numpy()
            rows.append({"protocol": path.parent.parent.name, "detector": path.parent.name, "test_set": test_set,
                         "diff": abs(equal_error_rate(y, s) - nearest_point_eer(y, s))})
    if not rows:
        raise SystemExit(f"no stored predictions under {args.leaderboard}/results")
    table = pd.DataFrame(rows)
    for protocol, part in table.groupby("protocol"):
        worst = part.loc[part["diff"].idxmax()]
        print(f"{protocol}: {len(part)} run x test set pairs; |EER interpolated - EER nearest point| median "
              f"{part['diff'].median():.4f}, max {part['diff'].max():.4f} ({worst['detector']} on {worst['test_set']})")


if __name__ == "__main__":
    main()
