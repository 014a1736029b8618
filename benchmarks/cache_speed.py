"""Feature-cache store and load speed at scale (``bench.cache.store.FeatureCache``).

Stores N x D float32 features under N file-like item keys in a temporary cache, then prints the
seconds and MB/s of: a cold store, a repeated store (entry already there: checksum only), a full
load (every key hits), a load of a 10% subset, and a lookup where 10% of the keys changed (per-item
reuse: 90% hit), plus the ratio load / store. Reads come from the page cache when the machine has
the memory for it (it usually does right after the store); the figure for a cold disk is bounded
by the disk's read rate.

    python benchmarks/cache_speed.py [--n 100000] [--dim 1280] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.cache.store import FeatureCache


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    features = torch.randn(args.n, args.dim)
    keys = [f"/data/progan/train/class{i % 20}/{i % 2}_real/{i:07d}.png|{60000 + i}|17000000000{i:08d}"
            for i in range(args.n)]
    mb = features.numel() * 4 / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp))
        ns = cache.namespace({"backbone": "open_clip:ViT-L-14@openai", "image_size": 224})
        start = time.perf_counter()
        cache.store(ns, keys, features, {"split": "train"})
        cold_store = time.perf_counter() - start
        again, _ = _best(lambda: cache.store(ns, keys, features), args.repeats)
        load, loaded = _best(lambda: cache.load(ns, keys), args.repeats)
        assert loaded is not None and torch.equal(loaded, features)
        subset = keys[: args.n // 10]
        sub, _ = _best(lambda: cache.load(ns, subset), args.repeats)
        changed = [k + "|changed" if i % 10 == 0 else k for i, k in enumerate(keys)]
        partial, found = _best(lambda: cache.lookup(ns, changed), args.repeats)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    print(f"features {args.n} x {args.dim} float32 = {mb:.0f} MB; on disk {size / 2**20:.0f} MB; "
          f"torch threads {torch.get_num_threads()}")
    rows = [("store (cold)", cold_store, mb), ("store (already cached)", again, mb), ("load all (hit)", load, mb),
            ("load 10% subset", sub, mb / 10), ("lookup, 10% keys changed", partial, mb * 0.9)]
    for name, seconds, megabytes in rows:
        print(f"{name:26s} {seconds:7.3f} s  {megabytes / seconds:8.0f} MB/s  {args.n / seconds:10.0f} items/s")
    print(f"partial lookup found {int(found.found.sum())} of {args.n}")
    print(f"ratio load/store(cold) = {load / cold_store:.2f}")


if __name__ == "__main__":
    main()
