"""``finetune``: plain full fine-tuning of any backbone with a linear head; presets ``xception``, ``effnet_b4``.

The control every method is compared against, as DeepfakeBench trains its Xception and
EfficientNet-B4 baselines (the defaults are its Xception recipe): ImageNet weights, every layer
trained, a two-class linear head on the pooled feature (logit ``z[1] − z[0]``, cross-entropy), 256-px
face crops normalised with mean = std = 0.5, DeepfakeBench's augmentation (flip 0.5, blur 3–7 px
0.5, one of brightness/contrast, FancyPCA, HSV 0.5, JPEG 40–100 0.5; EfficientNet-B4 adds rotation
±10° with p 0.5), Adam (lr 2e-4, betas 0.9/0.999, eps 1e-8, L2 weight decay 5e-4), 10 epochs, no
scheduler. Backbones: timm ``legacy_xception`` (Cadene's Xception, the weights DeepfakeBench loads)
and ``tf_efficientnet_b4`` (the TF-ported weights of ``efficientnet_pytorch``'s ``efficientnet-b4``).

Changes (also in ``portability_notes``): DeepfakeBench keeps the best epoch **per test set** (selected
on test data); here the best validation AUC. Its ``IsotropicResize`` is a no-op on its 256-px
crops and is not repeated; rotations use reflected borders like its albumentations pipeline.
DeepfakeBench's EfficientNet-B4 also replaces the pretrained stem by a fresh, unpadded
convolution and uses drop-connect 0.2; the preset keeps the pretrained stem and sets
``drop_path`` 0.2. The embedded protocols run it on the offline EfficientNet-Lite0 at 64 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn
from torchvision import transforms as T

from bench import DataConfig, Detector, Preset
from bench.errors import ConfigError
from detectors.blocks.augment import DeepfakeBenchAugment
from detectors.blocks.backbones import build_backbone
from detectors.blocks.released import load_exact, set_drop_path, strip_prefix
from detectors.blocks.tuning import apply_tune

#: DeepfakeBench's Xception always builds a 2048 -> 512 1x1 conv + BatchNorm (``adjust_channel``) that its
#: "original" mode, the released model's, never runs; its files carry these tensors (name: shape).
UNUSED_ADJUST_CHANNEL = {"backbone.adjust_channel.0.weight": (512, 2048, 1, 1), "backbone.adjust_channel.0.bias": (512,),
                         **{f"backbone.adjust_channel.1.{k}": (512,)
                            for k in ("weight", "bias", "running_mean", "running_var")},
                         "backbone.adjust_channel.1.num_batches_tracked": ()}


class FineTune(Detector):
    """Every backbone layer trained, linear head (two-class by default), DeepfakeBench's recipe."""

    version = "1"
    portability_notes: ClassVar[str] = (
        "Selection on validation AUC (DeepfakeBench keeps the best epoch per test set, i.e. selects on test "
        "data). IsotropicResize omitted (a no-op on 256-px crops). The effnet_b4 preset keeps timm's "
        "pretrained same-padded stem (DeepfakeBench re-initialises an unpadded one). Embedded protocols: "
        "offline ImageNet EfficientNet-Lite0 at 64 px.")

    @dataclass
    class Config:
        """DeepfakeBench's Xception baseline recipe."""

        backbone: str = "timm:legacy_xception.tf_in1k"
        image_size: int = 256
        #: Input normalisation: "half" (mean = std = 0.5, DeepfakeBench) or "backbone" (the weights' own).
        norm: str = "half"
        #: Two-class head with logit z[1] - z[0] (DeepfakeBench) or a single logit.
        two_class: bool = True
        #: Stochastic depth of timm EfficientNets (lukemelas' drop-connect); 0 for other backbones.
        drop_path: float = 0.0
        lr: float = 2e-4
        weight_decay: float = 5e-4
        epochs: int = 10
        flip_prob: float = 0.5
        rotate_prob: float = 0.0
        rotate_limit: float = 10.0
        blur_prob: float = 0.5
        color_prob: float = 0.5
        jpeg_prob: float = 0.5
        jpeg_quality: list[int] = field(default_factory=lambda: [40, 100])
        select: str | None = "best:auc"

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        if self.cfg.norm not in ("half", "backbone"):
            raise ConfigError(f"Setting 'norm' of detector 'finetune' is {self.cfg.norm!r}; use 'half' or 'backbone'.")
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        apply_tune(self.backbone, "full", where="detector 'finetune'")
        if self.cfg.drop_path > 0:
            if not hasattr(self.backbone.model, "blocks") or self.backbone.kind != "cnn":
                raise ConfigError(f"Setting 'drop_path' of detector 'finetune' applies to timm EfficientNets only, "
                                  f"not {self.cfg.backbone!r}; set drop_path=0.")
            set_drop_path(self.backbone.model, self.cfg.drop_path)
        self.head = nn.Linear(self.backbone.embed_dim, 2 if self.cfg.two_class else 1)

    def data_config(self) -> DataConfig:
        """``image_size`` resize, mean/std per ``norm``."""
        bb = self.backbone
        half = self.cfg.norm == "half"
        return DataConfig(image_size=self.cfg.image_size, mean=(0.5,) * 3 if half else tuple(bb.mean),
                          std=(0.5,) * 3 if half else tuple(bb.std), interpolation=bb.interpolation)

    def augmentation(self) -> DeepfakeBenchAugment:
        """DeepfakeBench's training augmentation with this config's probabilities."""
        c = self.cfg
        return DeepfakeBenchAugment(c.flip_prob, c.rotate_prob, c.rotate_limit, c.blur_prob, c.color_prob,
                                    c.jpeg_prob, tuple(c.jpeg_quality))

    def transform(self, train: bool):
        """Resize to ``image_size`` (square crop), then (training) the augmentation, then normalise."""
        dc = self.data_config()
        steps = [T.Resize(dc.image_size, interpolation=T.InterpolationMode(dc.interpolation)), T.CenterCrop(dc.image_size)]
        if train:
            steps.append(self.augmentation())
        return T.Compose(steps + [T.ToTensor(), T.Normalize(dc.mean, dc.std)])

    def forward(self, images: Tensor) -> Tensor:
        """``z[1] − z[0]`` of the two-class head, or the single logit."""
        z = self.head(self.backbone(images))
        return z[:, 1] - z[:, 0] if self.cfg.two_class else z.squeeze(1)

    def configure_optimizer(self, total_steps: int):
        """Adam with L2 weight decay (``torch.optim.Adam``'s, as DeepfakeBench), constant lr."""
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=self.cfg.weight_decay), None

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also read DeepfakeBench's ``xception_best.pth``: ``backbone.*`` in Cadene's Xception names (timm's
        ``legacy_xception``) with the head ``backbone.last_linear`` [2, 2048]; its seven unused
        ``backbone.adjust_channel.*`` tensors (:data:`UNUSED_ADJUST_CHANNEL`) are dropped, nothing else."""
        state = strip_prefix(state, "module.")
        if "backbone.last_linear.weight" not in state:
            super().load_checkpoint(state, where, metadata)
            return
        what = "DeepfakeBench's Xception (backbone.* Cadene names, backbone.last_linear [2, 2048])"
        for key, shape in UNUSED_ADJUST_CHANNEL.items():
            if key in state and tuple(state[key].shape) != shape:
                raise ConfigError(f"Checkpoint {where} key {key!r} has shape {tuple(state[key].shape)}, but "
                                  f"DeepfakeBench's unused adjust_channel layer has {shape}; it is not {what}.")
        state = {k: v for k, v in state.items() if k not in UNUSED_ADJUST_CHANNEL}
        if not self.cfg.two_class:
            raise ConfigError(f"Checkpoint {where} has DeepfakeBench's two-class head; run with two_class=true.")
        body = {k[len("backbone."):]: v for k, v in state.items()
                if k.startswith("backbone.") and not k.startswith("backbone.last_linear.")}
        head = {k[len("backbone.last_linear."):]: v for k, v in state.items() if k.startswith("backbone.last_linear.")}
        rest = sorted(k for k in state if not k.startswith("backbone."))
        if rest:
            raise ConfigError(f"Checkpoint {where} has keys outside backbone.*: {rest[:5]}; it is not {what}.")
        load_exact(self.backbone.model, body, where, what)
        load_exact(self.head, head, where, what)


XCEPTION = Preset(
    detector=FineTune,
    overrides={"backbone": "timm:legacy_xception.tf_in1k", "image_size": 256, "norm": "half", "two_class": True,
               "drop_path": 0.0, "lr": 2e-4, "weight_decay": 5e-4, "epochs": 10, "rotate_prob": 0.0,
               "select": "best:auc"},
    description="Xception as DeepfakeBench trains it: full fine-tune, 256 px, Adam 2e-4, 10 epochs, face augmentation",
    paper="2307.01426",
)

EFFNET_B4 = Preset(
    detector=FineTune,
    overrides={"backbone": "timm:tf_efficientnet_b4.aa_in1k", "image_size": 256, "norm": "half", "two_class": True,
               "drop_path": 0.2, "lr": 2e-4, "weight_decay": 5e-4, "epochs": 10, "rotate_prob": 0.5,
               "select": "best:auc"},
    description="EfficientNet-B4 as DeepfakeBench trains it: full fine-tune, 256 px, Adam 2e-4, 10 epochs, + rotation",
    paper="2307.01426",
)
