"""The detector adapter contract: ``Detector``, its ``Config`` and ``Preset``.

A detector is an ``nn.Module`` whose ``forward`` maps ``[B, 3, H, W]`` images to ``[B]`` logits
(> 0 means fake). Everything else is an optional hook with a default. See README "Add a detector".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bench.plugin import steps, transforms, weights
from bench.plugin.types import DataConfig, FeatureSet, StepContext


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
    #: Forward-only passes the runner makes through :meth:`warmup_step` before the first optimisation
    #: step (CoRIT's CGP warm-up). They are not steps: no optimizer or scheduler step, no effect on
    #: the step budget or on the training data order. May be a property computed from the config.
    warmup_batches: ClassVar[int] = 0
    #: The transform receives a uint8 CHW tensor instead of a PIL image (faster decoding). Plugins
    #: keep receiving PIL images unless they opt in.
    tensor_input: ClassVar[bool] = False
    #: What had to change to run this detector on the embedded protocols' offline backbone (printed by
    #: ``bench show detector``); empty when it runs as published.
    portability_notes: ClassVar[str] = ""
    #: Non-tensor classes a released checkpoint of this detector may hold (loaded with
    #: ``weights_only=True`` and exactly these allowed through torch's safe globals).
    checkpoint_globals: ClassVar[tuple] = ()
    #: False for detectors that ignore the train split's fakes and make their own from its reals
    #: (SBI, through :meth:`train_sample_builder`); recorded in results.json.
    uses_train_fakes: ClassVar[bool] = True

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
        return transforms.build_transform(self.data_config(), train=train)

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
        return steps.standard_step(self, batch, ctx)

    def warmup_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        """One of the ``warmup_batches`` forward-only passes, through ``ctx.model``, in training mode.

        The default runs the model without gradients (statistics-collecting layers see the batch).
        """
        with torch.no_grad():
            ctx.model(batch["image"])
        return {}

    def train_sample_builder(self) -> Callable[[Any, int, dict[str, Any]], list[tuple[Any, int]]] | None:
        """Optional: a function that turns one training row into the samples actually trained on.

        ``build(image, label, extras) -> [(image, label), ...]``: called in the loader workers on the
        decoded PIL image, before ``transform(train=True)``, seeded per (seed, epoch, row) like
        augmentation; ``extras`` holds ``id``, ``source`` and what the source knows about the image
        (``landmarks`` when the data has them). Rows mapped to ``[]`` are dropped from the batch.
        SBI uses it to make self-blended fakes from real images. None (default): one sample per row.
        """
        return None

    def feature_identity(self) -> dict[str, Any] | None:
        """For ``fits_features`` detectors: what determines :meth:`features` besides the image and the
        eval transform (e.g. backbone spec and a hash of its weights). Returning a dict lets the runner
        cache features on disk across runs; None (default) disables the cache for this detector.
        """
        return None

    def classify_features(self, features: Tensor) -> Tensor:
        """Logits from :meth:`features` output; lets the runner predict from cached features."""
        raise NotImplementedError("subclasses that return a feature_identity() implement classify_features()")

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Load trained weights for ``--eval-only``; strict by default. Override to read released formats."""
        weights.load_trained_state(self, state, where, metadata)

    def features(self, images: Tensor) -> Tensor:
        """Fixed features for ``fit_features`` (only for ``fits_features`` detectors)."""
        raise NotImplementedError("detectors with fits_features = True implement features()")

    def fit_features(self, train: FeatureSet, val: FeatureSet, select: str) -> dict[str, Any]:
        """Fit in closed form on cached features, choosing hyper-parameters on ``val``; return selection info."""
        raise NotImplementedError("detectors with fits_features = True implement fit_features()")

    def build_records(self) -> dict[str, dict[str, Any]]:
        """What was built inside this detector, for results.json: ``{module path: record}``.

        Any sub-module with a ``build_record`` dict attribute contributes it (the shared backbones
        record their spec, weights and, for open_clip, the activation the tower runs with and what
        decided it). Override to add more.
        """
        return {name or "(detector)": dict(module.build_record) for name, module in self.named_modules()
                if isinstance(getattr(module, "build_record", None), dict)}

