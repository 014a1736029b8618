"""``gend``: GenD, "Deepfake Detection that Generalizes Across Benchmarks" (Yermakov et al., arXiv
2508.06248, WACV 2026).

A frozen CLIP ViT of which only the LayerNorm affine parameters train (``pre``, ``ln_1``, ``ln_2``,
``post``: 50 LayerNorms, ~0.1M parameters in ViT-L/14), plus a "LinearNorm" head: the 1024-d
final-normalised class token (before CLIP's projection) is L2-normalised, z = f/‖f‖, and a
``Linear(1024, 2)`` read as z[1] − z[0] gives the logit. Loss: cross-entropy + 0.5·uniformity(z) +
0.1·alignment(z, y) (:mod:`detectors.blocks.metric_losses`). Defaults follow the authors' final runs: AdamW
lr 3e-4, weight decay 0 (biases and norms never decay), cosine annealing to 1e-6 with warm restarts
every 10 epochs over 30 epochs, selection on validation AP, and the training augmentation (flip,
affine, rare blur, colour jitter, JPEG q 40–100 on every image) before CLIP's resize + center crop.
Not reproduced: the effective batch of 512 and bf16 (runner options ``--batch-size``/``--precision``).

Portability (EfficientNet-Lite0 at 64 px, the embedded protocols): the CNN's norms are BatchNorms, so
their affine parameters (γ, β) train while their running statistics stay the pretrained ones (eval
mode; train-mode BatchNorm would re-estimate statistics, a different method); the head reads the
L2-normalised pooled 1280-d feature; the protocol's 3-epoch cap and selection rule apply, with one
cosine cycle (``lr_cycles: 1``) and lr 1e-2: with unit-norm features the logits grow only as fast as
the head's weights, and at the protocol's 1e-3 the cross-entropy stays near log 2 for all 45 steps
(chosen on validation AUC, not test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms import v2

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.transforms import build_transform
from detectors.blocks.backbones import build_backbone
from detectors.blocks.heads import LogitHead
from detectors.blocks.hf_clip import hf_vision_to_open_clip, load_open_clip_visual
from detectors.blocks.metric_losses import alignment, uniformity
from detectors.blocks.train_augment import gend_augment
from detectors.blocks.tuning import FrozenBackboneMixin, apply_tune

_RELEASED = ("feature_extractor.vision_model.", "feature_extractor.visual_projection.weight",
             "model.linear.weight", "model.linear.bias")


class GenD(FrozenBackboneMixin, Detector):
    """Norm-affine tuning of a frozen backbone, L2-normalised class token, linear head, CE + metric losses."""

    version = "1"
    paper = "2508.06248"
    portability_notes: ClassVar[str] = (
        "On a CNN (EfficientNet-Lite0 at 64 px) the tuned norms are BatchNorm affine parameters, with running "
        "statistics frozen (eval mode); the head reads the L2-normalised pooled 1280-d feature. The protocol's "
        "3-epoch cap and selection rule apply, with one cosine cycle (lr_cycles=1) and lr 1e-2 (chosen on val "
        "AUC: with unit-norm features the head's logits stay near 0 for the 45 steps at the protocol's 1e-3).")

    @dataclass
    class Config:
        """Settings of GenD (defaults: the authors' final WACV configuration)."""

        backbone: str = "open_clip:ViT-L-14-quickgelu@openai"
        image_size: int = 224
        lr: float = 3e-4
        min_lr: float = 1e-6
        weight_decay: float = 0.0
        epochs: int = 30
        #: Cosine cycles with warm restarts over the run (GenD: restart every 10 of 30 epochs).
        lr_cycles: int = 3
        uniformity_weight: float = 0.5
        alignment_weight: float = 0.1
        #: "gend" (the published training augmentation) or "none" (flip only).
        augment: str = "gend"
        select: str | None = "best:ap"

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        c = self.cfg
        if c.augment not in ("gend", "none"):
            raise ConfigError(f"Setting 'augment' of detector 'gend' is {c.augment!r}; use 'gend' or 'none'.")
        if c.lr_cycles < 1 or not 0 <= c.min_lr <= c.lr:
            raise ConfigError(f"Detector 'gend' needs lr_cycles >= 1 and 0 <= min_lr <= lr; got lr_cycles "
                              f"{c.lr_cycles}, min_lr {c.min_lr}, lr {c.lr}.")
        self.backbone = build_backbone(c.backbone, image_size=c.image_size)
        apply_tune(self.backbone, "norm", where="detector 'gend'")
        self.head = LogitHead(self.backbone.unprojected_dim, classes=2, normalise=True)

    def data_config(self) -> DataConfig:
        """CLIP's processor: shorter side to ``image_size`` (bicubic), center crop, CLIP mean/std."""
        return self.backbone.data_config(self.cfg.image_size)

    def transform(self, train: bool):
        """Eval: resize + center crop; train: the augmentation first, then the same resize + center crop."""
        if not train:
            return build_transform(self.data_config(), train=False)
        augment = gend_augment() if self.cfg.augment == "gend" else v2.RandomHorizontalFlip(0.5)
        return v2.Compose([augment, build_transform(self.data_config(), train=False)])

    def features(self, images: Tensor) -> Tensor:
        """The L2-normalised class token z (what the head and the metric losses read)."""
        return F.normalize(self.backbone(images, projected=False), dim=-1)

    def forward(self, images: Tensor, return_features: bool = False):
        """One logit per image; with ``return_features`` also z, for the training losses."""
        z = self.features(images)
        logits = self.head(z)
        return (logits, z) if return_features else logits

    def train_step(self, batch: dict[str, Tensor], ctx) -> dict[str, Tensor]:
        """CE + uniformity + alignment on one batch through ``ctx.model``."""
        logits, z = ctx.model(batch["image"], return_features=True)
        ce = self.loss(logits, batch)
        uni, ali = uniformity(z), alignment(z, batch["label"])
        loss = ce + self.cfg.uniformity_weight * uni + self.cfg.alignment_weight * ali
        ctx.accelerator.backward(loss)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.detach(), "ce": ce.detach(), "uniformity": uni.detach(), "alignment": ali.detach()}

    def configure_optimizer(self, total_steps: int):
        """AdamW (decay on the head's weight only) and cosine annealing with ``lr_cycles`` warm restarts."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p is self.head.linear.weight]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay},
                  {"params": [p for p in params if p is not self.head.linear.weight], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, betas=(0.9, 0.999))
        cycle = max(1, math.ceil(max(total_steps, 1) / self.cfg.lr_cycles))
        floor = self.cfg.min_lr / self.cfg.lr if self.cfg.lr > 0 else 0.0

        def factor(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step % cycle) / cycle))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also read the authors' Hugging Face ``model.safetensors`` (``yermandy/GenD_CLIP_L_14``)."""
        if not any(k.startswith(_RELEASED[0]) for k in state):
            return super().load_checkpoint(state, where, metadata)
        if self.backbone.library != "open_clip":
            raise ConfigError(f"Checkpoint {where} is a released GenD CLIP file; it needs an open_clip backbone "
                              f"(open_clip:ViT-L-14-quickgelu@openai), not {self.cfg.backbone!r}.")
        stray = sorted(k for k in state if not k.startswith(_RELEASED[0]) and k not in _RELEASED[1:])
        if stray or not all(k in state for k in _RELEASED[2:]):
            raise ConfigError(f"Checkpoint {where} is not a GenD LinearNorm file: unexpected keys {stray[:4]} or "
                              f"no model.linear.weight/bias.")
        vision = {k.removeprefix(_RELEASED[0]): v for k, v in state.items() if k.startswith(_RELEASED[0])}
        mapped = hf_vision_to_open_clip(vision, where, projection=state.get(_RELEASED[1]))
        load_open_clip_visual(self.backbone.model, mapped, where)
        self.head.load_released(state[_RELEASED[2]], state[_RELEASED[3]], where)
