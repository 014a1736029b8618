"""Indexing speed: build a synthetic FaceForensics++ tree of zero-byte frames and time ``bench data index ffpp``.

Usage: ``python benchmarks/index_speed.py [--files 100000]``. Indexing never decodes images, so
zero-byte placeholders measure it faithfully; the tree is built in a temporary directory (not timed)
and removed afterwards. Target: 100k files in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.data.indexers import index_dataset

METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
FRAMES = 32


def build_tree(root: Path, n_files: int) -> int:
    """Write an FF++ tree with about ``n_files`` frames (32 per video, 1 real + 4 fakes per id); return the count."""
    n_ids = max(2, n_files // (FRAMES * (1 + len(METHODS))) // 2 * 2)
    ids = [f"{i:03d}" for i in range(n_ids)]
    pairs = [[ids[i], ids[i + 1]] for i in range(0, n_ids, 2)]
    cut1, cut2 = int(len(pairs) * 0.72), int(len(pairs) * 0.86)
    (root / "splits").mkdir(parents=True)
    for name, part in (("train", pairs[:cut1]), ("val", pairs[cut1:cut2]), ("test", pairs[cut2:])):
        (root / "splits" / f"{name}.json").write_text(json.dumps(part))
    videos = [f"original_sequences/youtube/c23/frames/{v}" for v in ids]
    videos += [f"manipulated_sequences/{m}/c23/frames/{a}_{b}" for m in METHODS for a, b in pairs]
    videos += [f"manipulated_sequences/{m}/c23/frames/{b}_{a}" for m in METHODS for a, b in pairs]
    count = 0
    for v in videos[: len(ids) * (1 + len(METHODS))]:
        d = root / v
        d.mkdir(parents=True)
        for i in range(FRAMES):
            os.close(os.open(d / f"{i:03d}.png", os.O_CREAT | os.O_WRONLY))
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="number of frame files to index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "FaceForensics++"
        t0 = time.perf_counter()
        n = build_tree(root, args.files)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = index_dataset("ffpp", root)
        seconds = time.perf_counter() - t0
        with open(out) as f:
            rows = sum(1 for _ in f) - 1
    print(f"built {n} files in {built:.1f} s; indexed {rows} rows in {seconds:.2f} s "
          f"= {rows / seconds:,.0f} files/s (target: 100k in < 60 s)")


if __name__ == "__main__":
    main()
