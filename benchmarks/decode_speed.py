"""Decode + transform throughput per core: the PIL path against the uint8-tensor path, on 256-px JPEGs.

Usage: ``python benchmarks/decode_speed.py [--images 512] [--sizes 224,64] [--repeats 3]``. Writes
``--images`` JPEG crops (256x256, quality 90) of the bundled photos to a temporary directory (not
timed), then, with one torch thread, times for each output size: PIL decode
(``bench.data.decode.decode_file``) + the eval transform on the PIL image, and torchvision decode
(``bench.data.tensor_decode.decode_tensor_file``) + the same transform on the tensor. Prints img/s
per core for each path, their ratio, and the largest difference between the two outputs (within
``bench.plugin.transforms.TENSOR_TOLERANCE`` grey levels); then the same through ``RawDataset`` (which adds
the per-row seeding and sample dict) on both paths. The best of ``--repeats`` passes is kept.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.data.dataset import RawDataset
from bench.data.decode import decode_file
from bench.data.sources.folder import FolderSource
from bench.data.sources.photos import PHOTO_NAMES, load_photo
from bench.data.splits import ResolvedSplit
from bench.data.tensor_decode import decode_tensor_file
from bench.plugin.transforms import build_transform
from bench.plugin.types import DataConfig

SIDE = 256


def write_jpegs(folder: Path, n: int) -> list[Path]:
    """``n`` 256x256 JPEG crops of the bundled photos (quality 90), deterministic."""
    rng = np.random.default_rng(0)
    photos = [load_photo(name) for name in PHOTO_NAMES]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        y, x = rng.integers(0, h - SIDE + 1), rng.integers(0, w - SIDE + 1)
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(photo[y:y + SIDE, x:x + SIDE]).save(path, quality=90)
        paths.append(path)
    return paths


def rate(paths: list[Path], decode, transform, repeats: int) -> tuple[float, list[torch.Tensor]]:
    """Best images/s over ``repeats`` passes, and the outputs of the last pass."""
    best = 0.0
    for _ in range(repeats):
        out = []
        start = time.perf_counter()
        for path in paths:
            out.append(transform(decode(path)[0]))
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best, out


def dataset_rate(folder: Path, transform, tensor_input: bool, repeats: int) -> float:
    """Best samples/s of ``RawDataset`` over the JPEGs in ``folder``."""
    source = FolderSource("jpegs", {"root": folder.name, "layout": "", "label": 0}, folder.parent)
    table = source.select("test")
    table["source"] = source.name
    split = ResolvedSplit("test", table, {source.name: source})
    data = RawDataset(split, transform, tensor_input=tensor_input)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(len(data)):
            data[i]
        best = max(best, len(data) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="number of 256-px JPEGs")
    parser.add_argument("--sizes", default="224,64", help="output sizes to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="passes per path (the best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per core: the loader's workers each run one such loop
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpegs"
        folder.mkdir()
        paths = write_jpegs(folder, args.images)
        print(f"{args.images} JPEGs of {SIDE}x{SIDE} px (quality 90), 1 thread, "
              f"best of {args.repeats} passes")
        for size in (int(s) for s in args.sizes.split(",")):
            cfg = DataConfig(image_size=size, interpolation="bicubic")
            transform = build_transform(cfg, train=False)
            pil, pil_out = rate(paths, decode_file, transform, args.repeats)
            tensor, tensor_out = rate(paths, decode_tensor_file, transform, args.repeats)
            diff = max((a - b).abs().max().item() for a, b in zip(pil_out, tensor_out))
            levels = diff * min(cfg.std) * 255
            print(f"image_size {size:>3} bicubic: PIL path {pil:7.1f} img/s per core, tensor path "
                  f"{tensor:7.1f} img/s per core, ratio {tensor / pil:.2f}; max difference {diff:.4f} "
                  f"({levels:.1f} grey levels)")
            ds_pil = dataset_rate(folder, transform, False, args.repeats)
            ds_tensor = dataset_rate(folder, transform, True, args.repeats)
            print(f"    through RawDataset: PIL path {ds_pil:7.1f} img/s per core, tensor path "
                  f"{ds_tensor:7.1f} img/s per core, ratio {ds_tensor / ds_pil:.2f}")


if __name__ == "__main__":
    main()
