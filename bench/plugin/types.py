"""The small records a detector exchanges with the runner: ``DataConfig``, ``StepContext``, ``FeatureSet``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

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
