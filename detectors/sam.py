"""``sam``: the SAM-only baseline of the CoRIT study (corit.md §2).

A linear head on a backbone's final image embedding, trained with Sharpness-Aware Minimization over
AdamW (:func:`bench.plugin.steps.sam_step`). Which backbone parameters train is chosen by ``tune``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.steps import sam_step
from detectors.blocks.backbones import build_backbone
from detectors.blocks.tuning import apply_tune


def check_radius(rho: object) -> None:
    """Raise ConfigError unless ``rho`` is a finite non-negative number."""
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho < 0:
        raise ConfigError(f"Setting 'rho' (the SAM radius) must be a non-negative number, got {rho!r}; "
                          f"use for example rho=0.05.")


class SAMBaseline(Detector):
    """Linear head on the final embedding; SAM over AdamW; backbone parameters chosen by ``tune``.

    ``tune``: ``norm`` (the affine parameters of LayerNorm / GroupNorm / BatchNorm layers),
    ``none`` (head only), ``last:K`` (the last K tapped layers of ``backbone.layer_names`` plus what
    follows them up to the embedding: final norm, projection, CNN head convolution), ``full``.

    Modes: frozen parts always run in eval mode. Under ``tune: norm`` BatchNorm layers stay in eval
    mode too: their affine parameters train while their running statistics stay the pretrained ones
    (batch statistics of small, class-imbalanced forensic batches would replace them otherwise).
    Under ``last:K`` / ``full`` the tuned layers run in training mode, and the perturbed SAM pass
    leaves running statistics untouched.
    """

    version = "1"
    paper = "2603.24057"
    tensor_input = True

    @dataclass
    class Config:
        """Settings of the SAM baseline (corit.md §2)."""

        backbone: str = "open_clip:ViT-L-14-quickgelu@openai"
        image_size: int = 224
        #: Backbone parameters to train: "norm", "none", "last:K" or "full".
        tune: str = "norm"
        lr: float = 1e-4
        weight_decay: float = 0.0
        #: SAM radius; 0 gives plain AdamW steps.
        rho: float = 0.05
        #: ASAM: scale the perturbation by |w|.
        adaptive: bool = False
        epochs: int = 3
        select: str | None = None

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        check_radius(self.cfg.rho)
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        self._train_modules = self._apply_tune(self.cfg.tune)
        self.head = nn.Linear(self.head_dim(), 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def head_dim(self) -> int:
        """Size of the representation the head reads (the final embedding here)."""
        return self.backbone.embed_dim

    def _apply_tune(self, tune: str) -> list[nn.Module]:
        """Set ``requires_grad`` per ``tune``; return the backbone modules that run in training mode."""
        return apply_tune(self.backbone, tune, where=f"detector {type(self).__name__}")

    def train(self, mode: bool = True) -> SAMBaseline:
        """Frozen backbone parts (and BatchNorm under ``tune: norm``) stay in eval mode."""
        super().train(mode)
        if mode:
            self.backbone.eval()
            for module in self._train_modules:
                module.train()
        return self

    def data_config(self) -> DataConfig:
        """The backbone's normalisation at the configured size."""
        return self.backbone.data_config(self.cfg.image_size)

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image from the final embedding."""
        return self.head(self.backbone(images)).squeeze(1)

    def train_step(self, batch, ctx):
        """One SAM step (``rho``, ``adaptive``) over the AdamW optimizer through ``ctx.model``."""
        return sam_step(self, batch, ctx, rho=self.cfg.rho, adaptive=self.cfg.adaptive)
