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

    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(f"The Config of {where} is not a dataclass; decorate it with @dataclass "
                          f"(bench validates its keys and types).")
    names = [f.name for f in dataclasses.fields(config_cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"Unknown setting {key!r} for {where}.{did_you_mean(key, names)} "
                f"Valid settings: {', '.join(names)} (see `bench show detector`)."
            )
    defaults = dataclasses.asdict(config_cls())
    try:
        config = TypeAdapter(config_cls).validate_python({**defaults, **values})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"Setting {key!r} of {where} is invalid: {first['msg']} (got {first.get('input')!r})."
        ) from None
    check_ranges(config, where)
    return config


#: Settings whose name fixes their range, whatever the detector: (test, what a valid value is).
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, "a whole number >= 1"),
    "image_size": (lambda v: v >= 1, "a positive number of pixels"),
    "lr": (lambda v: v > 0, "a positive finite number, e.g. 1e-4"),
    "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
}


def check_ranges(config: Any, where: str) -> None:
    """Reject settings no run can use, before any data or weights are touched.

    Every number must be finite; ``epochs`` >= 1, ``image_size`` > 0, ``lr`` > 0 and
    ``weight_decay`` >= 0 by name, whatever the detector; a list setting whose default holds values
    (a grid such as ``c_values``) must not be empty.
    """
    import math

    defaults = type(config)()
    for field_ in dataclasses.fields(config):
        value = getattr(config, field_.name)
        if isinstance(value, bool) or value is None:
            continue
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not value and getattr(defaults, field_.name):
            raise ConfigError(f"Setting {field_.name!r} of {where} is an empty list; give at least one value.")
        for number in numbers:
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"Setting {field_.name!r} of {where} is {number!r}; use a finite number.")
        test = _RANGES.get(field_.name)
        if test is not None and isinstance(value, (int, float)) and not test[0](value):
            raise ConfigError(f"Setting {field_.name!r} of {where} is {value!r}; use {test[1]}.")
