"""The detector adapter contract: ``Detector``, its ``Config``, ``DataConfig``, ``StepContext``, ``Preset``.

A detector is an ``nn.Module`` whose ``forward`` maps ``[B, 3, H, W]`` images to ``[B]`` logits
(> 0 means fake). Everything else is an optional hook with a default. See README "Add a detector".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from bench.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from accelerate import Accelerator


@dataclass(frozen=True)
class DataConfig:
    """The preprocessing a detector expects (timm's data-config idea)."""

    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    #: "resize": resize the shorter side then center-crop; "center_crop": crop without resizing (UnivFD eval).
    resize: str = "resize"


@dataclass
class StepContext:
    """Everything a train step may touch.

    ``model`` is the Accelerate-prepared detector (DDP-wrapped when distributed): call it, not
    ``self``, or gradient synchronisation and autocast are skipped.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    accelerator: Accelerator
    step: int = 0
    scheduler: Any = None


@dataclass
class FeatureSet:
    """Features computed once by the runner for closed-form fitting (``Detector.fit_features``)."""

    features: Tensor  # [N, D] float32, in table order
    labels: Tensor  # [N] int64


@dataclass
class Preset:
    """A named configuration of a detector class (``univfd`` is ``clip_linear`` with UnivFD's recipe)."""

    detector: type[Detector]
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper: str | None = None


class Detector(nn.Module):
    """Base class of detector adapters. Subclass it, define ``Config``, implement ``forward``."""

    #: Bump when behaviour changes; recorded in every result.
    version: ClassVar[str] = "1"
    #: arXiv id of the method's paper, if any.
    paper: ClassVar[str | None] = None
    #: True when the detector is fitted in closed form on cached features (see ``fit_features``).
    fits_features: ClassVar[bool] = False

    @dataclass
    class Config:
        """Hyper-parameters; unknown keys are rejected."""

        lr: float = 1e-3
        weight_decay: float = 0.0
        epochs: int = 1
        #: Overrides the protocol's ``val.select`` ("last" or "best:<metric>") when set.
        select: str | None = None

    def __init__(self, cfg: Any = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else self.Config()

    def forward(self, images: Tensor) -> Tensor:
        """Map ``[B, 3, H, W]`` images to ``[B]`` logits; > 0 means fake. Required."""
        raise NotImplementedError("subclasses implement forward()")

    # -- optional hooks ----------------------------------------------------------------------
    def data_config(self) -> DataConfig:
        """The input size and normalisation this detector expects."""
        return DataConfig(image_size=getattr(self.cfg, "image_size", 224))

    def transform(self, train: bool) -> Callable:
        """PIL image → normalised tensor; training adds a horizontal flip. Override for augmentation."""
        from bench.transforms import build_transform

        return build_transform(self.data_config(), train=train)

    def configure_optimizer(self, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """AdamW over trainable parameters (``cfg.lr``, ``cfg.weight_decay``), constant learning rate."""
        params = [p for p in self.parameters() if p.requires_grad]
        lr, weight_decay = getattr(self.cfg, "lr", 1e-3), getattr(self.cfg, "weight_decay", 0.0)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        return optimizer, None

    def loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """Binary cross-entropy with logits against ``batch["label"]`` (1 = fake)."""
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["label"].float())

    def train_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        """One optimisation step through ``ctx.model``; returns scalars to log."""
        from bench.steps import standard_step

        return standard_step(self, batch, ctx)

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Load trained weights for ``--eval-only``; strict by default. Override to read released formats."""
        from bench.checkpoint import load_trained_state

        load_trained_state(self, state, where, metadata)

    def features(self, images: Tensor) -> Tensor:
        """Fixed features for ``fit_features`` (only for ``fits_features`` detectors)."""
        raise NotImplementedError("detectors with fits_features = True implement features()")

    def fit_features(self, train: FeatureSet, val: FeatureSet, select: str) -> dict[str, Any]:
        """Fit in closed form on cached features, choosing hyper-parameters on ``val``; return selection info."""
        raise NotImplementedError("detectors with fits_features = True implement fit_features()")


def build_config(config_cls: type, values: dict[str, Any], where: str) -> Any:
    """Build a detector ``Config`` dataclass strictly: unknown keys fail with did-you-mean, types are checked."""
    from pydantic import TypeAdapter, ValidationError

    names = [f.name for f in dataclasses.fields(config_cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"Unknown setting {key!r} for {where}.{did_you_mean(key, names)} "
                f"Valid settings: {', '.join(names)} (see `bench show detector`)."
            )
    defaults = dataclasses.asdict(config_cls())
    try:
        return TypeAdapter(config_cls).validate_python({**defaults, **values})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"Setting {key!r} of {where} is invalid: {first['msg']} (got {first.get('input')!r})."
        ) from None
