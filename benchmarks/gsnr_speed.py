"""Time layer-wise GSNR on the embedded backbone: 128 probe samples, EfficientNet-Lite0 at 64 px.

Target: under 1 minute on 2 CPU cores. Uses the ``sam`` detector (``tune: norm``) when it is
installed, otherwise a stand-in with the same trainable set: the offline EfficientNet-Lite0 backbone
with only its BatchNorm affine parameters trainable, plus a linear head.

    HF_HUB_OFFLINE=1 python benchmarks/gsnr_speed.py [-n 128] [--method auto|vmap|loop] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

from bench import Detector
from bench.analysis.diagnose import layer_gsnr, probe_samples
from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector

BACKBONE = "timm:tf_efficientnet_lite0@imagenet-offline"


class NormTuned(Detector):
    """Stand-in for ``sam`` with ``tune: norm``: BN affine parameters and a linear head are trainable."""

    @dataclass
    class Config:
        backbone: str = BACKBONE
        image_size: int = 64

    def __init__(self, cfg=None):
        from detectors.blocks.backbones import build_backbone

        super().__init__(cfg)
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        for module in self.backbone.modules():
            for p in module.parameters(recurse=False):
                p.requires_grad_(isinstance(module, nn.modules.batchnorm._BatchNorm))
        self.head = nn.Linear(self.backbone.embed_dim, 1)

    def forward(self, images):
        return self.head(self.backbone(images)).squeeze(1)


def build(size: int) -> tuple[str, Detector]:
    """The ``sam`` detector when available, else the stand-in."""
    try:
        spec = resolve_detector("sam", {"backbone": BACKBONE, "image_size": size, "tune": "norm"})
        torch.manual_seed(0)
        return "sam", spec.build()
    except (ConfigError, ImportError):
        torch.manual_seed(0)
        return "stand-in (BN affine + linear head)", NormTuned(NormTuned.Config(image_size=size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--method", default="auto", choices=["auto", "vmap", "loop"])
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    name, detector = build(args.size)
    images, labels = probe_samples("synthetic_universal", args.n, seed=0)
    transform = detector.transform(train=False)
    batch = torch.stack([transform(image) for image in images])
    t1 = time.perf_counter()
    frame = layer_gsnr(detector, batch, labels, method=args.method, chunk_size=args.chunk_size)
    t2 = time.perf_counter()
    trainable = sum(p.numel() for p in detector.parameters() if p.requires_grad)
    print(frame.to_string(index=False))
    print(f"\ndetector: {name}; trainable parameters: {trainable}; samples: {len(labels)} at {args.size} px; "
          f"threads: {args.threads}; method: {frame.attrs['method']}; chunk: {args.chunk_size}")
    print(f"setup (build + probe images): {t1 - t0:.1f} s; GSNR: {t2 - t1:.1f} s; total: {t2 - t0:.1f} s")


if __name__ == "__main__":
    main()
