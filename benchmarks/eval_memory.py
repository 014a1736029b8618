"""Evaluation memory must not grow with the test-set size beyond the scores.

Runs `bench run --eval-only` on a synthetic protocol whose test set has N and then 8·N images per
class, in fresh processes, and prints the peak resident memory of each and their ratio. Only the
scores (8 bytes per image) should scale, so the ratio stays close to 1.

Usage: python benchmarks/eval_memory.py [--n 250]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROTOCOL = """name: memprobe
version: 1
description: Memory probe.
sources:
  synth: {{type: synthetic, image_size: 64, n_per_class: {{train: 16, val: 16, test: {n}}}, seed: 0}}
detector_defaults: {{backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 64}}
train: {{source: synth, split: train, subsets: [upsample_tconv]}}
val: {{source: synth, split: val, subsets: [upsample_tconv]}}
test: {{t: {{source: synth, split: test, subsets: [upsample_tconv]}}}}
metrics: [auc, ap]
primary: auc@t
"""

PROBE = """
import resource, sys
from bench.cli import main
try:
    main(sys.argv[1:])
finally:
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def peak_kb(workdir: Path, n: int) -> int:
    proto = workdir / f"n{n}" / "memprobe.yaml"
    proto.parent.mkdir()
    proto.write_text(PROTOCOL.format(n=n))
    train = subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", str(proto), "--detector",
                            "clip_linear", "--out", str(proto.parent / "runs"), "--run-name", "train"],
                           check=True, capture_output=True, text=True)
    del train
    run_dir = proto.parent / "runs" / "memprobe" / "clip_linear" / "train"
    done = subprocess.run([sys.executable, "-c", PROBE, "run", "--protocol", str(proto), "--detector", "clip_linear",
                           "--eval-only", "--checkpoint", str(run_dir), "--out", str(proto.parent / "runs"),
                           "--run-name", "eval"], check=True, capture_output=True, text=True)
    assert json.loads((proto.parent / "runs" / "memprobe" / "clip_linear" / "eval" / "results.json").read_text())
    return int(done.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=250, help="test images per class of the small run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = peak_kb(Path(tmp), args.n), peak_kb(Path(tmp), 8 * args.n)
    print(f"test images {2 * args.n:>6}: peak RSS {small / 1024:7.1f} MiB")
    print(f"test images {16 * args.n:>6}: peak RSS {large / 1024:7.1f} MiB")
    print(f"ratio large/small: {large / small:.3f} for 8x the images")


if __name__ == "__main__":
    main()
