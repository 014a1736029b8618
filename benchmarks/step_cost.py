"""Cost of one train step: plain (AdamW), SAM (``sam``) and CoRIT (``corit``) on the same backbone.

The three steps are interleaved (plain, SAM, CoRIT, plain, ...) so that load from other processes
affects them alike, and each ratio is taken per repeat from adjacent steps: CoRIT/SAM (gate:
median <= 1.15) and SAM/plain (two passes: floor 2.0, target <= 2.1). Printed per ratio: the median
over repeats, the interquartile range and the min–max, for wall time and for the process's CPU
time (with ``--threads 1`` the CPU time hardly depends on what else runs on the machine, so it is
the steadier of the two when the machine is shared). All three train the same parameters
(``tune: norm`` and the head); the plain step is ``standard_step`` on the ``sam`` detector. CoRIT
runs with its defaults; its CGP warm-up passes and two steps per variant run before timing.

``--profile`` adds a cProfile of CoRIT's step on each backbone: where its extra time goes.

    python benchmarks/step_cost.py --threads 1 [--repeats 15] [--batch-size 32] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

BACKBONES = [
    ("timm:tf_efficientnet_lite0@imagenet-offline", 64),
    ("timm:vit_tiny_patch16_224@none", 64),
]
RATIOS = [("CoRIT/SAM", "corit", "sam", "gate: median <= 1.15"),
          ("SAM/plain", "sam", "plain", "floor 2.0, target <= 2.1")]


def spread(values: list[float]) -> str:
    """``median [q1–q3] (min–max)`` of a list of ratios."""
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{med:.3f} [IQR {q1:.3f}–{q3:.3f}] (min–max {min(values):.3f}–{max(values):.3f})"


def build_steps(spec: str, size: int, batch: dict, acc) -> dict:
    """plain, sam and corit steps on ``spec``, each warmed up (CGP warm-up passes, two steps)."""
    import torch

    from bench.plugin.factory import resolve_detector
    from bench.plugin.steps import standard_step
    from bench.plugin.types import StepContext

    steps = {}
    for kind, name in [("plain", "sam"), ("sam", "sam"), ("corit", "corit")]:
        torch.manual_seed(0)
        det = resolve_detector(name, {"backbone": spec, "image_size": size}).build()
        optimizer, _ = det.configure_optimizer(100)
        model, optimizer = acc.prepare(det, optimizer)
        model.train()
        ctx = StepContext(model=model, optimizer=optimizer, accelerator=acc)
        for _ in range(det.warmup_batches):
            det.warmup_step(batch, ctx)
        step = (lambda b, c, d=det: standard_step(d, b, c)) if kind == "plain" else det.train_step
        for _ in range(2):
            step(batch, ctx)
        steps[kind] = (step, ctx)
    return steps


def profile_corit(step, ctx, batch, n: int = 5) -> None:
    """cProfile of ``n`` CoRIT steps: the share of CoRIT's own code (hooks, CGP update) per step."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU time: steadier than wall time under load
    profiler.enable()
    for _ in range(n):
        step(batch, ctx)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(ct for (_, _, fn), (_, _, _, ct, _) in stats.items() if fn == "train_step")
    rows = [(f"{os.path.basename(file)}:{fn}", calls // n, ct / n)
            for (file, _, fn), (calls, _, _, ct, _) in stats.items()
            if os.path.basename(file) in ("corit_parts.py", "corit.py", "backbones.py", "steps.py")]
    print(f"  cProfile (CPU time), per CoRIT step ({total / n * 1e3:.1f} ms in train_step; cumulative, nested):")
    for name, calls, ct in sorted(rows, key=lambda r: -r[2])[:16]:
        print(f"    {name:<40} {calls:5d} calls {ct * 1e3:8.2f} ms  {ct / total * n:6.1%}")


def main() -> None:
    """Measure and print the step costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per kind (use >= 15)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also profile CoRIT's step (cProfile)")
    args = parser.parse_args()
    if args.repeats < 4:
        parser.error("--repeats must be at least 4 (the spread needs quartiles); use >= 15")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from accelerate import Accelerator

    if args.threads:
        torch.set_num_threads(args.threads)
    acc = Accelerator(cpu=not torch.cuda.is_available())

    def sync() -> None:
        if acc.device.type == "cuda":
            torch.cuda.synchronize()

    print(f"device {acc.device}, threads {torch.get_num_threads()}, batch {args.batch_size}, {args.repeats} "
          f"interleaved repeats, load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for spec, size in BACKBONES:
        g = torch.Generator().manual_seed(0)
        batch = {"image": torch.randn(args.batch_size, 3, size, size, generator=g).to(acc.device),
                 "label": (torch.arange(args.batch_size) % 2).to(acc.device)}
        steps = build_steps(spec, size, batch, acc)
        wall = {kind: [] for kind in steps}
        cpu = {kind: [] for kind in steps}
        for _ in range(args.repeats):
            for kind, (step, ctx) in steps.items():
                sync()
                start, start_cpu = time.perf_counter(), time.process_time()
                step(batch, ctx)
                sync()
                wall[kind].append(time.perf_counter() - start)
                cpu[kind].append(time.process_time() - start_cpu)
        print(f"{spec} @ {size}px: median step plain {statistics.median(wall['plain']) * 1e3:.1f} ms, "
              f"SAM {statistics.median(wall['sam']) * 1e3:.1f} ms, CoRIT {statistics.median(wall['corit']) * 1e3:.1f} "
              f"ms (wall); {statistics.median(cpu['plain']) * 1e3:.1f} / {statistics.median(cpu['sam']) * 1e3:.1f} / "
              f"{statistics.median(cpu['corit']) * 1e3:.1f} ms (CPU)")
        for label, num, den, target in RATIOS:
            for clock, times in (("wall", wall), ("CPU", cpu)):
                ratios = [a / b for a, b in zip(times[num], times[den])]
                print(f"  {label:<9} {clock:<4} {spread(ratios)}  ({target})")
        if args.profile:
            profile_corit(*steps["corit"], batch)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
