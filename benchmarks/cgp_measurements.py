"""What CoRIT's training logs measured: contrastive-signal variance with/without the RRM mask and
CGP magnitude before/after Regional Signal Injection, averaged over training steps (not the CGP
warm-up passes), per run.

Usage: python benchmarks/cgp_measurements.py RUN_DIR [RUN_DIR ...]   (directories of `corit` runs)
"""

import json
import statistics
import sys
from pathlib import Path

KEYS = [("cgp_var_full", "cgp_var_masked"), ("cgp_norm", "cgp_norm_inj")]


def summarise(run_dir: Path) -> dict[str, float]:
    """Mean of each logged CGP scalar over the steps that logged it."""
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    records = [r for r in records if r.get("event") != "warmup"]  # CGP warm-up passes are not training steps
    out = {}
    for pair in KEYS:
        for key in pair:
            values = [r[key] for r in records if key in r]
            out[key] = statistics.mean(values) if values else float("nan")
    return out


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"{'run':<40} {'var full':>9} {'var masked':>11} {'masked/full':>12} {'|CGP|':>7} {'|CGP| inj':>10} {'inj/plain':>10}")
    for arg in sys.argv[1:]:
        s = summarise(Path(arg))
        print(f"{Path(arg).name:<40} {s['cgp_var_full']:9.2f} {s['cgp_var_masked']:11.2f} "
              f"{s['cgp_var_masked'] / s['cgp_var_full']:12.3f} {s['cgp_norm']:7.3f} {s['cgp_norm_inj']:10.3f} "
              f"{s['cgp_norm_inj'] / s['cgp_norm']:10.3f}")


if __name__ == "__main__":
    main()
