"""Scale benchmark: the harness on a ForenSynths-layout tree of N 256-px JPEGs, as ratios measured in one run.

Builds the tree once (``--data DIR`` keeps it for the next invocation), then measures:

1. indexing rate (``bench data index forensynths``), files/s;
2. time from ``bench run`` to the first training step on the N-image train split (cheap file checks);
3. loader throughput alone vs bare model forward at the same batch (ratio);
4. ``bench run`` predict throughput vs bare forward (target >= 0.9 here with ``--workers auto``);
5. peak memory of evaluating 10k vs N test images (target: +200 MB at most);
6. a repeated ``clip_linear`` run with a warm feature cache vs a cold one (target <= 0.15 of the
   cold run's feature time).

Throughput ratios use a small backbone at low resolution (EfficientNet-Lite0 at 64 px) so the full
mode fits in 30 minutes on 2 cores; the N images serve indexing, time to first step and memory.
Usage: ``python benchmarks/scale.py [--n 100000] [--quick] [--data DIR] [--workers auto]``.
``--quick`` (N = 4000, small sets) finishes in under 5 minutes here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BACKBONE = "timm:tf_efficientnet_lite0@imagenet-offline"
SIZE = 64
PROTOCOL = """name: {name}
version: 1
description: scale benchmark protocol.
sources:
  fs: {{type: manifest, path: forensynths/index.csv}}
detector_defaults: {{backbone: "{backbone}", image_size: {size}, lr: 0.001}}
train: {{source: fs, split: train{train_cap}}}
val: {{source: fs, split: val, select: "best:auc"}}
test:
  t: {{source: fs, split: {test}{cap}}}
metrics: [auc]
primary: auc@t
budget: {{max_epochs: 1}}
"""


def _photo_crops():
    from skimage import data

    return [np.asarray(getattr(data, n)()) for n in ("astronaut", "coffee", "chelsea", "rocket")]


def _write(args) -> None:
    path, seed = args
    from PIL import Image

    rng = np.random.default_rng(seed)
    photo = _PHOTOS[seed % len(_PHOTOS)]
    y, x = rng.integers(0, photo.shape[0] - 128), rng.integers(0, photo.shape[1] - 128)
    crop = Image.fromarray(photo[y:y + 128, x:x + 128])
    fake = "1_fake" in path
    img = crop.resize((256, 256), Image.NEAREST if fake else Image.BICUBIC)
    img.save(path, quality=90)


def build(root: Path, n_train: int, n_val: int, n_test: int) -> float:
    """Write the ForenSynths tree (once); return seconds spent."""
    marker = root / "forensynths" / f".built-{n_train}-{n_val}-{n_test}"
    if marker.exists():
        return 0.0
    t0 = time.perf_counter()
    jobs = []
    for split, n, subset in (("train", n_train, "airplane"), ("val", n_val, "airplane"), ("test", n_test, "progan")):
        for label in ("0_real", "1_fake"):
            folder = root / "forensynths" / split / subset / label
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [(str(folder / f"{i:06d}.jpg"), len(jobs) + i) for i in range(n // 2)]
    with mp.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_write, jobs, chunksize=256)
    marker.write_text("ok\n")
    return time.perf_counter() - t0


def bench(*args: str, env: dict | None = None) -> tuple[float, str]:
    """Run ``bench ARGS`` in a fresh process; return (wall seconds, stderr)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        sys.exit(f"bench {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0, done.stderr


def protocol(root: Path, name: str, test: str, cap: int | None = None, train_cap: int | None = None,
             size: int = SIZE) -> Path:
    """A protocol over the tree; ``cap``/``train_cap`` keep that many images per class of the test/train split."""
    path = root / f"{name}.yaml"
    path.write_text(PROTOCOL.format(name=name, backbone=BACKBONE, size=size, test=test,
                                    cap=f", max_per_class: {cap}" if cap else "",
                                    train_cap=f", max_per_class: {train_cap}" if train_cap else ""))
    return path


def run_dir(out: Path) -> Path:
    (found,) = [p for p in out.glob("*/*/*") if (p / "results.json").is_file()]
    return found


def throughput(root: Path, proto: Path, workers: str, batch: int) -> dict[str, float]:
    """Bare forward, loader alone and predict, img/s, measured in this process."""
    import torch

    from bench.data.splits import build_sources, resolve_all
    from bench.plugin.factory import resolve_detector
    from bench.protocol import load_protocol
    from bench.run.runner import Runner, RunnerOptions

    proto_ = load_protocol(proto)
    split = resolve_all(proto_, build_sources(proto_, root))["test/t"]
    det = resolve_detector("clip_linear", None, proto_.detector_defaults).build().eval()
    n = len(split.table)
    x = torch.randn(batch, 3, SIZE, SIZE)
    with torch.inference_mode():
        det(x)
        times = []
        for _ in range(max(3, n // batch // 4)):
            t0 = time.perf_counter()
            det(x)
            times.append(time.perf_counter() - t0)
    bare = batch / float(np.median(times))
    runner = Runner(RunnerOptions(batch_size=batch, workers=workers, cache=False), seed=0)
    loader, _ = runner.loader(split, det, train=False)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    loader_rate = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    runner.predict(det, split)
    predict_rate = n / (time.perf_counter() - t0)
    return {"bare": bare, "loader": loader_rate, "predict": predict_rate, "n": n,
            "workers": runner.workers_used.get(split.name)}


def peak_rss(root: Path, proto: Path, checkpoint: Path, out: Path) -> float:
    """Peak RSS (MiB) of an eval-only run over ``proto``'s test set, in a fresh process."""
    probe = ("import resource, sys\nfrom bench.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
             "    print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, "run", "--protocol", str(proto), "--detector", "clip_linear",
                           "--eval-only", "--checkpoint", str(checkpoint), "--data-root", str(root), "--out", str(out),
                           "--no-cache"], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return int(done.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0]) / 1024


def feature_seconds(run: Path) -> float:
    """Seconds a clip_linear run spent on features: fit + predict minus the closed-form fit itself."""
    result = json.loads((run / "results.json").read_text())
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    fit = sum(e["seconds"] for e in log if e.get("event") == "fit_features")
    return result["timing"]["fit_seconds"] + result["timing"]["predict_seconds"] - fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="train images (and the large test set)")
    parser.add_argument("--quick", action="store_true", help="N = 4000 and small sets: under 5 minutes")
    parser.add_argument("--data", help="folder for the generated tree (kept for the next run)")
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    n = 4000 if args.quick else args.n
    n_small, n_val = (1000, 500) if args.quick else (10_000, 1000)
    root = Path(args.data or tempfile.mkdtemp(prefix="bench-scale-"))
    out = Path(tempfile.mkdtemp(prefix="bench-scale-runs-"))
    print(f"settings: N={n} train images, {n_small} small test, {n_val} val; 256-px JPEG; {BACKBONE} at {SIZE} px; "
          f"batch {args.batch}; --workers {args.workers}; {os.cpu_count()} cores; data {root}")
    built = build(root, n, n_val, n_small)
    print(f"built tree in {built:.1f} s" if built else "reused the tree")

    seconds, _ = bench("data", "index", "forensynths", str(root / "forensynths"), "--overwrite")
    total = n + n_val + n_small
    print(f"1. indexing: {total} files in {seconds:.1f} s (process incl. imports) = {total / seconds:,.0f} files/s")

    first = protocol(root, "scale_first", "test", cap=min(500, n_small // 2))
    start = time.time()
    bench("run", "--protocol", str(first), "--detector", "sam", "--data-root", str(root), "--out", str(out / "first"),
          "--max-steps", "1", "--workers", args.workers, "--batch-size", str(args.batch))
    log = [json.loads(line) for line in (run_dir(out / "first") / "train_log.jsonl").read_text().splitlines()]
    step = next(e for e in log if e.get("event") == "first_step")
    print(f"2. time to first training step on {n} train images: {step['unix_time'] - start:.1f} s from `bench run` "
          f"(of which {step['seconds_since_runner']:.1f} s after the runner started: data checks, model, contract)")

    # Throughput, memory and cache runs train on a capped train split: the N images serve steps 1, 2 and 5.
    small = protocol(root, "scale_small", "test", train_cap=n_val // 2)
    rates = throughput(root, small, args.workers, args.batch)
    print(f"3. loader alone {rates['loader']:.0f} img/s vs bare forward {rates['bare']:.0f} img/s: ratio "
          f"{rates['loader'] / rates['bare']:.2f} ({rates['workers']} workers)")
    print(f"4. predict {rates['predict']:.0f} img/s vs bare forward {rates['bare']:.0f} img/s: ratio "
          f"{rates['predict'] / rates['bare']:.2f} (target >= 0.9)")

    # Memory depends on the harness (tables, scores), not the model: a 32-px probe keeps N images quick.
    mem_small = protocol(root, "scale_mem_small", "test", train_cap=n_val // 2, size=32)
    bench("run", "--protocol", str(mem_small), "--detector", "clip_linear", "--data-root", str(root), "--out",
          str(out / "train"), "--workers", args.workers, "--no-cache")
    checkpoint = run_dir(out / "train")
    mem_big = protocol(root, "scale_mem_big", "train", train_cap=n_val // 2, size=32)
    rss_small = peak_rss(root, mem_small, checkpoint, out / "mem_small")
    rss_big = peak_rss(root, mem_big, checkpoint, out / "mem_big")
    print(f"5. peak memory, eval of {n_small} vs {n} test images (32 px probe): {rss_small:.0f} MiB vs "
          f"{rss_big:.0f} MiB (+{rss_big - rss_small:.0f} MiB; target +200 MiB at most)")

    cache = {"BENCH_CACHE": str(out / "cache")}
    for name in ("cold", "warm"):
        bench("run", "--protocol", str(small), "--detector", "clip_linear", "--data-root", str(root), "--out",
              str(out / name), "--workers", args.workers, env=cache)
    cold, warm = feature_seconds(run_dir(out / "cold")), feature_seconds(run_dir(out / "warm"))
    print(f"6. clip_linear feature time, warm cache {warm:.1f} s vs cold {cold:.1f} s: ratio {warm / cold:.3f} "
          f"(target <= 0.15)")
    print(f"run directories under {out}")


_PHOTOS = _photo_crops()

if __name__ == "__main__":
    main()
