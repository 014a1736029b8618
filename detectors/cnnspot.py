"""``cnnspot``: CNN-generated images are surprisingly easy to spot (Wang et al., CVPR 2020, arXiv 1912.11035).

The historical anchor of the universal protocol, built clean-room from its description: an
ImageNet ResNet-50 (torchvision's weights, timm's ``resnet50.tv_in1k``) whose every layer is
fine-tuned, with the classifier replaced by Linear(2048, 1) initialised N(0, 0.02), trained with
Gaussian blur (σ ~ U[0, 3]) and JPEG re-compression (quality uniform over 30–100), each with
probability 0.5 ("Blur+JPEG(0.5)"), on random 224 crops with horizontal flips, ImageNet
normalisation; BCE; Adam (lr 1e-4, betas 0.9/0.999); the epoch with the best validation accuracy
kept. Test: centre 224 crop, no resize.

Changes (also in ``portability_notes``): the authors stop early (patience 5 on validation accuracy,
lr ÷ 10 at each stop, until lr < 1e-6); the harness runs a fixed number of epochs at constant lr and
keeps the best validation-accuracy epoch. The blur is the authors' arithmetic (scipy's filter written
into the uint8 image, about 0.9 grey level darker than an exact blur); JPEG is PIL's only (the authors
draw cv2 or PIL, which gave identical bytes at every quality checked). Their loader's resize of the
shorter side to 256 is a no-op on ProGAN's 256-px images and is not repeated. The embedded protocols swap in the offline ImageNet EfficientNet-Lite0 at 64 px (its own normalisation),
all layers fine-tuned, same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.transforms import BlurJpeg, build_transform
from detectors.blocks.backbones import build_backbone
from detectors.blocks.released import load_exact
from detectors.blocks.tuning import apply_tune


class CNNSpot(Detector):
    """ImageNet ResNet-50, fully fine-tuned, one logit, blur + JPEG augmentation."""

    version = "2"
    paper = "1912.11035"
    portability_notes: ClassVar[str] = (
        "No early stopping (the authors' patience-5 lr drops until lr < 1e-6 need validation-driven "
        "schedules): a fixed number of epochs at constant lr, best validation accuracy kept. JPEG by PIL "
        "only (the authors draw cv2 or PIL; identical bytes where checked). Embedded protocols: offline ImageNet EfficientNet-Lite0 at "
        "64 px instead of ResNet-50 at 224, every layer fine-tuned, same blur/JPEG augmentation.")

    @dataclass
    class Config:
        """CNNSpot's published recipe (ProGAN 20-class training, Blur+JPEG(0.5))."""

        backbone: str = "timm:resnet50.tv_in1k"
        image_size: int = 224
        lr: float = 1e-4
        weight_decay: float = 0.0
        epochs: int = 20
        #: Probability of each of blur and JPEG (0.5 and 0.1 are the published models).
        aug_prob: float = 0.5
        blur_sigma: list[float] = field(default_factory=lambda: [0.0, 3.0])
        jpeg_quality: list[int] = field(default_factory=lambda: [30, 100])
        select: str | None = "best:acc"

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        if len(self.cfg.blur_sigma) != 2 or len(self.cfg.jpeg_quality) != 2:
            raise ConfigError("Settings 'blur_sigma' and 'jpeg_quality' of detector 'cnnspot' are [low, high] "
                              "ranges; write e.g. -o jpeg_quality=[30,100].")
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        apply_tune(self.backbone, "full", where="detector 'cnnspot'")
        self.head = nn.Linear(self.backbone.embed_dim, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def data_config(self) -> DataConfig:
        """The backbone's normalisation; crops without resizing (random in training, centre at test)."""
        return self.backbone.data_config(self.cfg.image_size, resize="center_crop")

    def augmentation(self) -> BlurJpeg:
        """Blur then JPEG, each with probability ``aug_prob``."""
        return BlurJpeg(p=self.cfg.aug_prob, blur_sigma=tuple(self.cfg.blur_sigma),
                        jpeg_quality=tuple(self.cfg.jpeg_quality))

    def transform(self, train: bool):
        """Train: blur/JPEG, random crop, flip; eval: centre crop."""
        return build_transform(self.data_config(), train=train, augment=self.augmentation())

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image."""
        return self.head(self.backbone(images)).squeeze(1)

    def configure_optimizer(self, total_steps: int):
        """Adam over every parameter, constant lr."""
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr, betas=(0.9, 0.999),
                                weight_decay=self.cfg.weight_decay), None

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also read the authors' ``blur_jpg_prob{0.5,0.1}.pth`` (its ``model``: torchvision ResNet-50 keys
        with ``fc`` [1, 2048]); the backbone must be a timm ResNet-50 (same key names)."""
        if "fc.weight" not in state:
            super().load_checkpoint(state, where, metadata)
            return
        what = "CNNSpot's released ResNet-50 (torchvision keys, fc [1, 2048])"
        body = {k: v for k, v in state.items() if not k.startswith("fc.")}
        head = {k[3:]: v for k, v in state.items() if k.startswith("fc.")}
        load_exact(self.backbone.model, body, where, what)
        load_exact(self.head, head, where, what)
