"""``sam``: the SAM-only baseline of the CoRIT study (corit.md §2).

A linear head on a backbone's final image embedding, trained with Sharpness-Aware Minimization over
AdamW (:func:`bench.steps.sam_step`). Which backbone parameters train is chosen by ``tune``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.steps import sam_step
from detectors.backbones import Backbone, build_backbone

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def modules_after(backbone: Backbone, layer: int) -> tuple[list[nn.Module], list[nn.Parameter]]:
    """The backbone modules that run after tapped layer ``layer``, and the parameters they own.

    Relies on timm and open_clip registering submodules in execution order (final norm, projection
    and CNN head convolution come last); open_clip's projection is a bare parameter of the root.
    """
    # ``_blocks`` holds the tapped layer modules (open_clip's are not named like layer_names).
    block = backbone._blocks[layer]
    inside = {id(m) for m in block.modules()}
    named = list(backbone.model.named_modules())
    start = next(i for i, (_, m) in enumerate(named) if m is block)
    modules = [m for _, m in named[start + 1:] if id(m) not in inside]
    params = [p for m in modules for p in m.parameters(recurse=False)]
    proj = backbone.model._parameters.get("proj")
    return modules, params + ([proj] if proj is not None else [])


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

    @dataclass
    class Config:
        """Settings of the SAM baseline (corit.md §2)."""

        backbone: str = "open_clip:ViT-L-14@openai"
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
        bb = self.backbone
        bb.requires_grad_(False)
        n_layers = len(bb.layer_names)
        where = f"Setting 'tune' of detector {type(self).__name__}"
        if tune == "none":
            return []
        if tune == "full":
            bb.requires_grad_(True)
            return [bb]
        if tune == "norm":
            norms = [m for m in bb.modules() if isinstance(m, _NORMS)]
            params = [p for m in norms for p in m.parameters(recurse=False)]
            if not params:
                raise ConfigError(f"{where} is 'norm' but {bb.spec!r} has no LayerNorm/GroupNorm/BatchNorm "
                                  f"with affine parameters; use 'last:K', 'full' or 'none'.")
            for p in params:
                p.requires_grad_(True)
            return []
        if tune.startswith("last:") and tune[5:].isdigit():
            k = int(tune[5:])
            if not 1 <= k <= n_layers:
                raise ConfigError(f"{where} is {tune!r} but {bb.spec!r} has {n_layers} layers; "
                                  f"use last:K with 1 <= K <= {n_layers}.")
            layers = bb._blocks[-k:]
            after, after_params = modules_after(bb, n_layers - 1)
            params = [p for m in layers for p in m.parameters()] + after_params
            if not params:
                raise ConfigError(f"{where} is {tune!r} but those layers of {bb.spec!r} have no parameters; "
                                  f"use a larger K.")
            for p in params:
                p.requires_grad_(True)
            return layers + after
        raise ConfigError(f"{where} is {tune!r}, which matches no parameters; use 'norm', 'none', "
                          f"'last:K' (1 <= K <= {n_layers}) or 'full'.")

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
        bb = self.backbone
        return DataConfig(image_size=self.cfg.image_size, mean=tuple(bb.mean), std=tuple(bb.std),
                          interpolation=bb.interpolation)

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image from the final embedding."""
        return self.head(self.backbone(images)).squeeze(1)

    def train_step(self, batch, ctx):
        """One SAM step (``rho``, ``adaptive``) over the AdamW optimizer through ``ctx.model``."""
        return sam_step(self, batch, ctx, rho=self.cfg.rho, adaptive=self.cfg.adaptive)
