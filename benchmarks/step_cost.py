"""Cost of one train step: plain (AdamW), SAM (``sam``) and CoRIT (``corit``) on the same backbone.

Prints the median wall time per step of each and the ratios SAM/plain (target <= 2.1) and
CoRIT/SAM (target <= 1.15), measured in one run with the three steps interleaved so that load
from other processes affects them alike. All three train the same parameters (``tune: norm`` and
the head); the plain step is ``standard_step`` on the ``sam`` detector. CoRIT runs with its
defaults; its CGP warm-up batches are run before timing starts.

    python benchmarks/step_cost.py [--repeats 15] [--batch-size 32] [--threads 2]
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


def main() -> None:
    """Measure and print the step costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per kind")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from accelerate import Accelerator

    from bench.detector import StepContext
    from bench.factory import resolve_detector
    from bench.steps import standard_step

    if args.threads:
        torch.set_num_threads(args.threads)
    acc = Accelerator(cpu=not torch.cuda.is_available())

    def sync() -> None:
        if acc.device.type == "cuda":
            torch.cuda.synchronize()

    print(f"device {acc.device}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"median of {args.repeats} steps")
    for spec, size in BACKBONES:
        g = torch.Generator().manual_seed(0)
        batch = {"image": torch.randn(args.batch_size, 3, size, size, generator=g).to(acc.device),
                 "label": (torch.arange(args.batch_size) % 2).to(acc.device)}
        runs = {}
        for kind, name in [("plain", "sam"), ("sam", "sam"), ("corit", "corit")]:
            torch.manual_seed(0)
            det = resolve_detector(name, {"backbone": spec, "image_size": size}).build()
            optimizer, _ = det.configure_optimizer(args.repeats)
            model, optimizer = acc.prepare(det, optimizer)
            model.train()
            ctx = StepContext(model=model, optimizer=optimizer, accelerator=acc)
            step = (lambda b, c, d=det: standard_step(d, b, c)) if kind == "plain" else det.train_step
            for _ in range(getattr(det.cfg, "cgp_warmup_batches", 0) + 2):  # warm-up, not timed
                step(batch, ctx)
            runs[kind] = (step, ctx, [])
        for _ in range(args.repeats):
            for step, ctx, times in runs.values():
                sync()
                start = time.perf_counter()
                step(batch, ctx)
                sync()
                times.append(time.perf_counter() - start)
        med = {kind: statistics.median(times) for kind, (_, _, times) in runs.items()}
        print(f"{spec} @ {size}px: plain {med['plain'] * 1e3:.1f} ms, SAM {med['sam'] * 1e3:.1f} ms, "
              f"CoRIT {med['corit'] * 1e3:.1f} ms | SAM/plain {med['sam'] / med['plain']:.2f} (target <= 2.1), "
              f"CoRIT/SAM {med['corit'] / med['sam']:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
