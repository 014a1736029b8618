"""Frozen backbone + linear probe: ``clip_linear`` (logistic regression on cached features) and ``univfd``.

``clip_linear`` follows CLIP's linear-probe evaluation: image embeddings are computed once, an
L2-regularised logistic regression is fitted with scikit-learn for each value of ``c_values``, and the
value is chosen on the validation split. ``univfd`` is the UnivFD recipe (Ojha et al., CVPR 2023) as a
preset: a linear layer on the frozen CLIP ViT-L/14 image embedding trained with BCE and AdamW
(lr 1e-4), selected on validation accuracy, with UnivFD's data pipeline: training images brought to
256 px (shorter side, bilinear), blurred (σ ~ U[0, 3]) and JPEG-compressed (quality 30–100) each with
probability 0.5, then a random 224 crop and a flip; test images centre-cropped to 224, never resized.

Changes from the authors' training (also in ``portability_notes``): they stop early (patience 5 on
validation accuracy, lr ÷ 10 at each stop, up to 100 epochs, batch 256) on ProGAN's *test* split; the
preset runs a fixed number of epochs at constant lr and keeps the best epoch on the protocol's
validation split (never a test split). The embedded protocols crop 56 px out of their 64-px images
(``load_size`` 64, the same 224/256 ratio at native resolution).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from bench import DataConfig, Detector, FeatureSet, Preset
from bench.errors import ConfigError
from bench.metrics import HIGHER_IS_BETTER, compute_metrics
from bench.plugin.transforms import BlurJpeg, build_transform
from bench.plugin.weights import state_fingerprint, trained_state
from detectors.blocks.backbones import build_backbone
from detectors.blocks.tuning import FrozenBackboneMixin


class ClipLinear(FrozenBackboneMixin, Detector):
    """Linear probe on a frozen backbone's final image embedding."""

    version = "2"
    tensor_input = True
    portability_notes: ClassVar[str] = (
        "univfd: a fixed number of epochs at constant lr, best validation-accuracy epoch kept (the authors stop "
        "early with patience 5 and lr / 10 per stop, validating on ProGAN's test split, which a protocol never "
        "selects on). Embedded protocols: offline EfficientNet-Lite0, 56-px crops of the 64-px images "
        "(load_size 64: UnivFD's 224-of-256 crop at native resolution).")

    @dataclass
    class Config:
        """Settings of the frozen-backbone linear probe."""

        backbone: str = "open_clip:ViT-L-14-quickgelu@openai"
        image_size: int = 224
        #: "logistic": closed-form fit on cached features; "sgd": train the linear layer by gradient descent.
        probe: str = "logistic"
        #: Inverse L2 strengths tried by the logistic probe, chosen on validation.
        c_values: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
        lr: float = 1e-4
        weight_decay: float = 0.0
        epochs: int = 3
        #: Training augmentation for the "sgd" probe: "none" or "blur_jpeg".
        augment: str = "none"
        aug_prob: float = 0.1
        #: Evaluation: "resize" (shorter side to image_size, then centre crop) or "center_crop" (no resize, UnivFD).
        resize: str = "resize"
        #: Training: shorter side resized to this (bilinear) before augmentation and the random crop; 0: not resized.
        load_size: int = 0
        select: str | None = None

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        if self.cfg.probe not in ("logistic", "sgd"):
            raise ConfigError(f"clip_linear probe must be 'logistic' or 'sgd', got {self.cfg.probe!r}.")
        if self.cfg.augment not in ("none", "blur_jpeg"):
            raise ConfigError(f"clip_linear augment must be 'none' or 'blur_jpeg', got {self.cfg.augment!r}.")
        if self.cfg.resize not in ("resize", "center_crop") or self.cfg.load_size < 0:
            raise ConfigError(f"clip_linear needs resize 'resize' or 'center_crop' and load_size >= 0 (0: no resize), "
                              f"got {self.cfg.resize!r} and {self.cfg.load_size}.")
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(self.backbone.embed_dim, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def fits_features(self) -> bool:  # type: ignore[override]
        """The logistic probe is fitted in closed form on features computed once."""
        return self.cfg.probe == "logistic"

    def data_config(self) -> DataConfig:
        """The backbone's normalisation at the configured size; resize or crop per ``resize``."""
        return self.backbone.data_config(self.cfg.image_size, resize=self.cfg.resize)

    def transform(self, train: bool):
        """Eval: resize + centre crop (or the crop alone); train: load resize, blur/JPEG, random crop, flip."""
        augment = BlurJpeg(p=self.cfg.aug_prob) if self.cfg.augment == "blur_jpeg" else None
        return build_transform(self.data_config(), train=train, augment=augment, load_size=self.cfg.load_size)

    def features(self, images: Tensor) -> Tensor:
        """The frozen final image embedding."""
        return self.backbone(images)

    def feature_identity(self) -> dict[str, Any] | None:
        """Backbone spec, image size and a hash of the frozen weights: features can be cached across runs."""
        if not self.fits_features:
            return None
        return {"backbone": self.cfg.backbone, "image_size": self.cfg.image_size,
                "weights_sha256": state_fingerprint(self.backbone.state_dict()), "features": "final_embedding"}

    def classify_features(self, features: Tensor) -> Tensor:
        """The probe's logits from :meth:`features` output (equal to ``forward`` on the same images)."""
        return self.head(features.to(self.head.weight.dtype)).squeeze(1)

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image."""
        return self.head(self.backbone(images)).squeeze(1)

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also accept UnivFD's released head file (``fc_weights.pth``: ``weight`` [1, D] and ``bias`` [1])."""
        if set(state) == {"weight", "bias"}:
            if tuple(state["weight"].shape) != tuple(self.head.weight.shape):
                raise ConfigError(f"Head file {where} has weight shape {tuple(state['weight'].shape)}, but the "
                                  f"backbone {self.cfg.backbone} needs {tuple(self.head.weight.shape)}.")
            # The released file has only the head; the frozen backbone's buffers stay as built.
            state = {**trained_state(self), "head.weight": state["weight"], "head.bias": state["bias"].reshape(1)}
        super().load_checkpoint(state, where, metadata)

    def fit_features(self, train: FeatureSet, val: FeatureSet, select: str) -> dict[str, Any]:
        """Fit a standardised logistic regression per C; keep the best on ``val``; load it into the head."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        metric = select.split(":")[1] if select.startswith("best:") else "auc"
        x_train, y_train = train.features.double().numpy(), train.labels.numpy()
        x_val, y_val = val.features.double().numpy(), val.labels.numpy()
        scaler = StandardScaler().fit(x_train)
        z_train, z_val = scaler.transform(x_train), scaler.transform(x_val)
        grid, best = [], None
        for c in self.cfg.c_values:
            model = LogisticRegression(C=c, max_iter=2000).fit(z_train, y_train)
            val_metrics = compute_metrics(y_val, model.decision_function(z_val), sorted({"auc", "ap", "acc", "eer", metric}))
            grid.append({"c": c, "val": val_metrics})
            value = val_metrics[metric]
            if best is None or (value > best[0] if HIGHER_IS_BETTER[metric] else value < best[0]):
                best = (value, c, model, val_metrics)
        _, c, model, val_metrics = best
        # Fold the scaler into the linear layer so forward() reproduces decision_function().
        scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
        weight = model.coef_[0] / scale
        bias = model.intercept_[0] - float(np.dot(weight, scaler.mean_))
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight, dtype=self.head.weight.dtype).unsqueeze(0))
            self.head.bias.fill_(float(bias))
        return {"c": c, "val": val_metrics, "grid": grid, "n_train": len(y_train)}


UNIVFD = Preset(
    detector=ClipLinear,
    overrides={"backbone": "open_clip:ViT-L-14-quickgelu@openai", "image_size": 224, "probe": "sgd", "lr": 1e-4,
               "weight_decay": 0.0, "epochs": 5, "augment": "blur_jpeg", "aug_prob": 0.5, "resize": "center_crop",
               "load_size": 256, "select": "best:acc"},
    description="UnivFD (Ojha et al., CVPR 2023): linear layer on frozen CLIP ViT-L/14, BCE + AdamW, blur/JPEG 0.5, "
                "224 crops of 256-px images, no test resize",
    paper="2302.10174",
)
