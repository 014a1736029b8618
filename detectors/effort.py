"""``effort``: Effort, orthogonal subspace decomposition (Yan et al., arXiv 2411.15633, ICML 2025).

Every attention projection of a frozen CLIP ViT (q, k, v and out, per block) is split by its SVD into
a frozen principal subspace and a trainable residual: the ``residual_rank`` smallest singular triplets
(:mod:`detectors.blocks.svd_residual`). Only the residual and a linear head on the 1024-d final-normalised
class token (before CLIP's projection; HF's ``pooler_output``) train. Defaults are the released
face recipe (DeepfakeBench fork): CLIP ViT-L/14 (QuickGELU) at 224 px, ``Linear(1024, 2)`` read as
z[1] − z[0], cross-entropy only (the orthogonality and norm regularisers are off in the authors'
release), Adam lr 2e-4, weight decay 5e-4, 10 epochs, the fork's hard-coded augmentation.
The UnivFD-protocol variant: ``head_classes=1 optimizer=adamw weight_decay=0 augment=none
resize=center_crop`` (and 18k steps at batch 48 in the paper).

Portability (EfficientNet-Lite0 at 64 px, the embedded protocols): a CNN has no attention, so the
same residual parameterisation goes on every ungrouped 1×1 convolution (expansion, projection and
the 320→1280 head conv) read as C_out × C_in; depthwise convs and BatchNorm stay frozen (running
statistics too); the head reads the pooled 1280-d feature. "Effort-style", not the published claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.transforms import build_transform
from detectors.blocks import svd_residual
from detectors.blocks.backbones import build_backbone
from detectors.blocks.heads import LogitHead
from detectors.blocks.hf_clip import hf_vision_to_open_clip, load_open_clip_visual
from detectors.blocks.train_augment import DeepfakeBenchFaceAugment
from detectors.blocks.tuning import FrozenBackboneMixin

_PROJECTIONS = ("q", "k", "v")
_RELEASED_PREFIX = "backbone.encoder.layers."


class Effort(FrozenBackboneMixin, Detector):
    """Frozen ViT with trainable SVD residuals of its attention projections, plus a linear head."""

    version = "1"
    paper = "2411.15633"
    portability_notes: ClassVar[str] = (
        "On a CNN (EfficientNet-Lite0 at 64 px) the SVD residual goes on every ungrouped 1x1 convolution "
        "(C_out x C_in) instead of attention projections; depthwise convs and BatchNorm (with running "
        "statistics) stay frozen; the head reads the pooled 1280-d feature. Learning rate is the "
        "protocol's (1e-3) and the run is capped at the protocol's 3 epochs.")

    @dataclass
    class Config:
        """Settings of Effort (defaults: the released DeepfakeBench face recipe)."""

        backbone: str = "open_clip:ViT-L-14-quickgelu@openai"
        image_size: int = 224
        #: Trainable smallest singular triplets per matrix (k; the paper: 1 of 1024).
        residual_rank: int = 1
        #: 2: Linear(D, 2) with default init, read as z[1] - z[0] (face); 1: Linear(D, 1) ~ N(0, 0.02) (UnivFD).
        head_classes: int = 2
        #: "adam" (L2 weight decay, DeepfakeBench) or "adamw" (UnivFD fork).
        optimizer: str = "adam"
        lr: float = 2e-4
        weight_decay: float = 5e-4
        epochs: int = 10
        #: "deepfakebench" (the face fork's pipeline) or "none" (flip only, as the UnivFD fork).
        augment: str = "deepfakebench"
        #: "resize" (shorter side to image_size, face) or "center_crop" (no resize, UnivFD).
        resize: str = "resize"
        select: str | None = None

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        c = self.cfg
        for key, allowed in (("optimizer", ("adam", "adamw")), ("augment", ("deepfakebench", "none")),
                             ("resize", ("resize", "center_crop"))):
            if getattr(c, key) not in allowed:
                raise ConfigError(f"Setting {key!r} of detector 'effort' is {getattr(c, key)!r}; use one of "
                                  f"{', '.join(allowed)}.")
        self.backbone = build_backbone(c.backbone, image_size=c.image_size)
        self.backbone.requires_grad_(False)
        if self.backbone.kind == "vit":
            targets = [t for i in range(len(self.backbone.blocks)) for t in self.backbone.attention_projections(i)]
        else:
            targets = [(m, "weight", 1) for m in svd_residual.pointwise_convs(self.backbone.model)]
        if not targets:
            raise ConfigError(f"Backbone {c.backbone!r} has no attention projection or 1x1 convolution for Effort.")
        for module, name, chunks in targets:
            svd_residual.attach(module, name, c.residual_rank, chunks)
        self.head = LogitHead(self.backbone.unprojected_dim, c.head_classes,
                              init_std=0.02 if c.head_classes == 1 else None)

    def data_config(self) -> DataConfig:
        """The backbone's normalisation at the configured size; resize or crop per ``resize``."""
        return self.backbone.data_config(self.cfg.image_size, resize=self.cfg.resize)

    def transform(self, train: bool):
        """Eval: resize (or crop) and normalise; train: the recipe's augmentation, crop and flip first."""
        augment = DeepfakeBenchFaceAugment() if self.cfg.augment == "deepfakebench" else None
        return build_transform(self.data_config(), train=train, augment=augment)

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image from the unprojected final class token."""
        return self.head(self.backbone(images, projected=False))

    def configure_optimizer(self, total_steps: int):
        """Adam (L2 decay) or AdamW over the residuals and the head; constant learning rate."""
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam if self.cfg.optimizer == "adam" else torch.optim.AdamW
        return opt(params, lr=self.cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=self.cfg.weight_decay), None

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """Also read the authors' released ``.pth`` (HF CLIP names with SVD sub-keys, ``head`` [2, 1024])."""
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if not any(k.startswith(_RELEASED_PREFIX) for k in state):
            return super().load_checkpoint(state, where, metadata)
        if self.backbone.library != "open_clip":
            raise ConfigError(f"Checkpoint {where} is a released Effort CLIP file; it needs an open_clip backbone "
                              f"(open_clip:ViT-L-14-quickgelu@openai), not {self.cfg.backbone!r}.")
        head = {k: state.pop(f"head.{k}", None) for k in ("weight", "bias")}
        if any(v is None for v in head.values()):
            raise ConfigError(f"Checkpoint {where} has no head.weight/head.bias; it is not a complete Effort file.")
        vision, residuals = _fold_released(state, where)
        load_open_clip_visual(self.backbone.model, hf_vision_to_open_clip(vision, where), where,
                              targets=self._originals())
        self._load_residuals(residuals, where)
        self.head.load_released(head["weight"], head["bias"], where)

    def _originals(self) -> dict[str, Tensor]:
        """open_clip key → the frozen original weight behind each parametrization."""
        out = {}
        for name, module in self.backbone.model.named_modules():
            for pname, plist in getattr(module, "parametrizations", {}).items():
                out[f"{name}.{pname}".lstrip(".")] = plist.original
        return out

    def _load_residuals(self, residuals: dict[int, dict[str, dict[str, Tensor]]], where: str) -> None:
        """Install the released residual triplets, so W_eff = released main + released residual exactly."""
        complete = {layer for layer, r in residuals.items() if set(r) == {*_PROJECTIONS, "out"}}
        if complete != set(range(len(self.backbone.blocks))) or len(residuals) != len(complete):
            raise ConfigError(f"Checkpoint {where} has SVD residuals for layers {sorted(complete)} (q, k, v, out "
                              f"each); the backbone has {len(self.backbone.blocks)} layers, all of which need them.")
        for layer, per_proj in residuals.items():
            (attn, _, _), (out_proj, _, _) = self.backbone.attention_projections(layer)
            for module, name, keys in ((attn, "in_proj_weight", _PROJECTIONS), (out_proj, "weight", ("out",))):
                svd = module.parametrizations[name][0]
                u, s, v = (torch.stack([per_proj[p][part] for p in keys]) for part in ("U", "S", "V"))
                if u.shape != svd.u_residual.shape or v.shape != svd.v_residual.shape:
                    raise ConfigError(f"Checkpoint {where}: layer {layer} residual has rank {u.shape[-1]} at width "
                                      f"{u.shape[-2]}; this detector has residual_rank {self.cfg.residual_rank} "
                                      f"at width {svd.u_residual.shape[-2]}.")
                svd.set_residual(u, s, v)


def _fold_released(state: dict[str, Tensor], where: str):
    """Split Effort's ``backbone.*`` keys into plain HF vision weights (main + residual folded) and residuals."""
    vision: dict[str, Tensor] = {}
    residuals: dict[int, dict[str, dict[str, Tensor]]] = {}
    for key, value in state.items():
        if not key.startswith("backbone."):
            raise ConfigError(f"Checkpoint {where} has key {key!r} outside backbone.* and head.*.")
        vision[key.removeprefix("backbone.")] = value
    for key in [k for k in vision if k.endswith(".weight_main")]:
        base = key.removesuffix(".weight_main")
        try:
            u, s, v = (vision.pop(f"{base}.{n}_residual") for n in ("U", "S", "V"))
        except KeyError:
            raise ConfigError(f"Checkpoint {where}: {base} has weight_main but not all of U/S/V_residual.") from None
        for frozen_copy in ("U_r", "S_r", "V_r"):  # redundant with weight_main
            vision.pop(f"{base}.{frozen_copy}", None)
        vision[f"{base}.weight"] = vision.pop(key) + (u * s) @ v
        layer, proj = int(base.split(".")[2]), base.rsplit(".", 1)[1].removesuffix("_proj")
        residuals.setdefault(layer, {})[proj] = {"U": u, "S": s, "V": v}
    if not residuals:
        raise ConfigError(f"Checkpoint {where} has no SVD residual keys (weight_main, U/S/V_residual).")
    return vision, residuals
