"""``npr``: Neighboring Pixel Relationships (Tan et al., CVPR 2024, arXiv 2312.10461), clean-room.

Up-sampling layers copy or interpolate pixels, so neighbouring pixels of a generated image are tied
to each other. NPR exposes that: with ``x`` the normalised image,
``NPR(x) = x − up_nearest(down_nearest(x, ½), 2)`` (down-nearest keeps the top-left pixel of each
2×2 cell, so one pixel in four of the residual is exactly zero, and an image up-sampled by nearest
neighbour has a residual of zero everywhere). ``⅔·NPR(x)`` feeds the truncated ResNet of
:mod:`detectors.blocks.truncated_resnet`, trained from scratch with one logit.

Published recipe (the defaults): ImageNet normalisation; every image resized to 256 × 256 (bilinear,
aspect not kept); training on random 224 crops of it with horizontal flips and no other augmentation;
testing on the whole 256 × 256 image, uncropped (the authors' test of ForenSynths, UnivFD's and
DiffusionForensics' sets; ``resize=center_crop`` tests on a centre ``image_size`` crop of the unresized
image instead, as their GenImage test does); BCE, Adam (lr 2e-4, betas 0.9/0.999, no weight decay),
50 epochs, lr × 0.9 after epochs 10, 20, 30 and 40, the **last** epoch kept (ProGAN validation is
only logged).

Changes, kept as small as the harness allows (also in ``portability_notes``):

- The authors test two benchmarks (GANGen-Detection, AIGCDetectBenchmark) at each image's own size
  with batch 1; a batch needs one size here (``load_size`` 0 with ``resize=center_crop`` comes closest).
- The lr schedule is laid over the run's steps (:mod:`detectors.blocks.schedules`): compressed when a
  protocol's budget stops training before ``epochs``.
- The embedded protocols train as published at their 64-px size with their 3-epoch budget
  (``detector_defaults.npr``: ``load_size`` 64, the images' own size); nothing pretrained is needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms import v2

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.transforms import ToFloat, build_transform
from detectors.blocks.released import load_exact
from detectors.blocks.schedules import step_decay
from detectors.blocks.truncated_resnet import TruncatedResNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def npr_residual(x: Tensor) -> Tensor:
    """``x − up_nearest(down_nearest(x, ½), 2)`` for ``[B, C, H, W]`` with even H and W."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"NPR needs even image sizes, got {tuple(x.shape[-2:])}")
    down = F.interpolate(x, scale_factor=0.5, mode="nearest")
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest")


class NPR(Detector):
    """Nearest-neighbour up-sampling residual into a truncated ResNet-50, trained from scratch."""

    version = "2"
    paper = "2312.10461"
    portability_notes: ClassVar[str] = (
        "One image size per batch: the authors' batch-1 tests at each image's own size (GANGen-Detection, "
        "AIGCDetectBenchmark) are not reproduced. The lr schedule (x0.9 after epochs 10/20/30/40 of 50) is laid over the run's steps, so a protocol "
        "budget compresses it. Embedded protocols: as published at 64 px (load_size 64, the images' own size) and "
        "3 epochs (from scratch).")

    @dataclass
    class Config:
        """NPR's published recipe (ProGAN 4-class training)."""

        #: Training crop size; must be even (the residual pairs pixels in 2×2 cells).
        image_size: int = 224
        #: Images are resized to load_size × load_size (bilinear) before the training crop and for testing;
        #: 0: never resized. Even (the test input is the resized image).
        load_size: int = 256
        #: Test input: "square" (the load_size × load_size image, uncropped) or "center_crop" (a centre
        #: image_size crop of the unresized image).
        resize: str = "square"
        lr: float = 2e-4
        weight_decay: float = 0.0
        epochs: int = 50
        #: lr multiplied by ``lr_decay`` after every ``lr_decay_every`` epochs (0: constant).
        lr_decay: float = 0.9
        lr_decay_every: int = 10
        #: The published model is the last epoch's.
        select: str | None = "last"

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        if self.cfg.image_size < 2 or self.cfg.image_size % 2:
            raise ConfigError(f"Setting 'image_size' of detector 'npr' is {self.cfg.image_size}, but NPR compares "
                              f"pixels in 2x2 cells and needs an even size; use e.g. {self.cfg.image_size + 1}.")
        c = self.cfg
        if c.load_size < 0 or c.load_size % 2 or c.resize not in ("square", "center_crop") or \
                (c.resize == "square" and c.load_size == 0):
            raise ConfigError(f"Detector 'npr' needs an even load_size >= 0 (0: no resize) and resize 'square' (with "
                              f"load_size > 0) or 'center_crop'; got load_size {c.load_size} and resize {c.resize!r}.")
        self.net = TruncatedResNet(num_outputs=1)

    def data_config(self) -> DataConfig:
        """ImageNet normalisation at the test input's size (``load_size`` for the square test, else ``image_size``)."""
        size = self.cfg.load_size if self.cfg.resize == "square" else self.cfg.image_size
        return DataConfig(image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
                          resize="center_crop")

    def transform(self, train: bool):
        """Train: square resize, random ``image_size`` crop, flip (no blur/JPEG); test: the square resize alone,
        or a centre ``image_size`` crop."""
        c, dc = self.cfg, self.data_config()
        crops = dataclasses.replace(dc, image_size=c.image_size)
        square = [v2.Resize((c.load_size, c.load_size), interpolation=v2.InterpolationMode.BILINEAR,
                            antialias=True)] if c.load_size else []
        if train:
            return v2.Compose([*square, *build_transform(crops, train=True).transforms])
        if c.resize == "center_crop":
            return build_transform(crops, train=False)
        return v2.Compose([*square, ToFloat(), v2.Normalize(list(dc.mean), list(dc.std))])

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image from ``⅔ · NPR(images)``."""
        return self.net(npr_residual(images) * (2.0 / 3.0)).squeeze(1)

    def configure_optimizer(self, total_steps: int):
        """Adam (betas 0.9/0.999) with the step decay of the recipe."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.cfg.lr, betas=(0.9, 0.999),
                                     weight_decay=self.cfg.weight_decay)
        return optimizer, step_decay(optimizer, total_steps, self.cfg.epochs, self.cfg.lr_decay_every,
                                     self.cfg.lr_decay)

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also read the authors' files (``NPR.pth``, ``model_epoch_last_3090.pth``): a plain state dict
        with keys ``conv1.weight`` … ``fc1.bias`` (``fc1`` [1, 512])."""
        if "fc1.weight" in state:
            load_exact(self.net, state, where, "NPR's released state dict (conv1 ... fc1 [1, 512])")
        else:
            super().load_checkpoint(state, where, metadata)
