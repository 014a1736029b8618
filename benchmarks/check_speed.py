"""Pre-run checks: the header-only ``Source.check_cheap`` against the full decode of ``find_bad_images``.

Usage: ``python benchmarks/check_speed.py [--files 10000] [--side 64]``. Writes ``--files`` small
PNG files (half real, half fake, a few of them broken) in a folder-source tree in a temporary
directory (not timed), then times one listing of the split, ``check_cheap`` (exists, non-zero size,
readable header; no pixel decoded), ``find_bad_images`` (decodes everything, what ``--check-images``
and ``bench data verify`` do) and ``item_keys`` (one stat per file, for caches). Prints files/s
for each and the ratio. The files are in the page cache when timed (a warm disk).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.sources.folder import FolderSource

BROKEN = 6  # two each: empty, a PNG signature alone, truncated inside the pixel data


def build_tree(root: Path, n: int, side: int) -> None:
    """``n`` PNGs under ``root/test/gen/{0_real,1_fake}``; the last ``BROKEN`` are broken (see ``BROKEN``)."""
    rng = np.random.default_rng(0)
    for label in ("0_real", "1_fake"):
        (root / "test/gen" / label).mkdir(parents=True)
    base = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    for i in range(n):
        path = root / "test/gen" / ("0_real" if i % 2 else "1_fake") / f"{i:06d}.png"
        base.save(path, compress_level=1)
        kind = i - (n - BROKEN)
        if kind >= 0:
            data = path.read_bytes()
            path.write_bytes([b"", b"\x89PNG\r\n\x1a\n", data[: len(data) // 2]][kind // 2])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="number of files")
    parser.add_argument("--side", type=int, default=64, help="image side in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_tree(Path(tmp) / "data", args.files, args.side)
        source = FolderSource("data", {"root": "data", "layout": "{split}/{subset}/{label}"}, Path(tmp))
        table, listing = timed(lambda: source.select("test"))
        cheap, t_cheap = timed(lambda: source.check_cheap(table))
        full, t_full = timed(lambda: source.find_bad_images(table))
        _, t_keys = timed(lambda: source.item_keys(table))
    n = len(table)
    print(f"{n} PNG files of {args.side}x{args.side} px ({BROKEN} broken), warm page cache")
    print(f"listing:          {n / listing:10,.0f} files/s")
    print(f"check_cheap:      {n / t_cheap:10,.0f} files/s  ({len(cheap)} of {BROKEN} broken flagged; "
          "truncated pixel data passes a header check)")
    print(f"find_bad_images:  {n / t_full:10,.0f} files/s  ({len(full)} of {BROKEN} broken flagged)")
    print(f"item_keys:        {n / t_keys:10,.0f} files/s")
    print(f"check_cheap is {t_full / t_cheap:.1f}x faster than the full decode pre-pass")


if __name__ == "__main__":
    main()
