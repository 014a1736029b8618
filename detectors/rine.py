"""``rine``: RINE, Representations from Intermediate Encoder-blocks (Koutlis & Papadopoulos, arXiv
2402.19091, ECCV 2024).

A frozen CLIP ViT is tapped inside every block: the class token at the output of the block's second
LayerNorm (``ln_2``, i.e. LN₂(x + Attn(LN₁(x))), not the block output). The T taps go through a
shared projection (Dropout, then ``nproj`` × [Linear, ReLU, Dropout]), are mixed by the Trainable
Importance Estimator (softmax over blocks of a learned [1, T, proj_dim] tensor, separately per
feature), then a second projection and a 3-layer head give the logit. Loss: summed BCE + factor ×
SupCon(L2-normalised second-projection output, τ 0.07). Defaults are the released 4-class ProGAN
model: CLIP ViT-L/14 (QuickGELU), nproj 2, proj_dim 1024, factor 0.2, Adam lr 1e-3, batch 128,
1 epoch, last checkpoint, blur (σ ~ U[0, 3], written into the uint8 image as the authors' code does)
and JPEG (q ∈ {30, 100}) each with prob 0.5, random crop 224 without resizing, center crop at test; the
SupCon term averages over every anchor of the batch, as the released loss does. (The paper's configs
were ranked on test data.) Not reproduced: the authors run CLIP in fp16 on a GPU (here fp32: logits
move by about 0.004 on a spread of 3), and the latent-diffusion model's ten-crop test.

Portability (EfficientNet-Lite0 at 64 px, the embedded protocols): the taps are the globally pooled
outputs of each feature stage (16, 24, 40, 112, 320 channels) plus the pooled 1280-d head conv; as
their widths differ, the first projection Linear is per tap instead of shared. BatchNorm stays in
eval mode. The protocol's learning rate, 3-epoch cap and selection rule replace 1 epoch / last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench import DataConfig, Detector
from bench.errors import ConfigError
from bench.plugin.transforms import build_transform
from detectors.blocks.backbones import build_backbone
from detectors.blocks.metric_losses import supcon
from detectors.blocks.train_augment import BlurJpegChoice
from detectors.blocks.tuning import FrozenBackboneMixin


class PerTapLinear(nn.Module):
    """One Linear per tap for taps of different widths: [B, Σ dᵢ] (taps concatenated) → [B, T, out]."""

    def __init__(self, dims: list[int], out: int):
        super().__init__()
        self.dims = list(dims)
        self.taps = nn.ModuleList(nn.Linear(d, out) for d in dims)

    def forward(self, x: Tensor) -> Tensor:
        """Apply tap i's Linear to its slice of the concatenation; stack over taps."""
        return torch.stack([lin(part) for lin, part in zip(self.taps, x.split(self.dims, dim=-1))], dim=1)


def _projection(first: nn.Module, dim: int, nproj: int, dropout: float) -> nn.Sequential:
    """Dropout, then ``nproj`` × [Linear, ReLU, Dropout] (the first Linear given); RINE's key layout."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    for i in range(nproj):
        layers += [first if i == 0 else nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class RINE(FrozenBackboneMixin, Detector):
    """Frozen backbone, intermediate class-token taps, learned per-block importance, projections and head."""

    version = "2"
    paper = "2402.19091"
    portability_notes: ClassVar[str] = (
        "On a CNN (EfficientNet-Lite0 at 64 px) the taps are the pooled outputs of each feature stage plus the "
        "pooled 1280-d head conv, with a per-tap first Linear (widths differ); BatchNorm in eval mode. The "
        "protocol's learning rate (1e-3), 3-epoch cap and selection rule replace 1 epoch / last checkpoint.")

    @dataclass
    class Config:
        """Settings of RINE (defaults: the released 4-class ProGAN model)."""

        backbone: str = "open_clip:ViT-L-14-quickgelu@openai"
        image_size: int = 224
        nproj: int = 2
        proj_dim: int = 1024
        dropout: float = 0.5
        #: Weight of the SupCon term (1 class: 0.1; 2 and 4 classes: 0.2).
        supcon_weight: float = 0.2
        temperature: float = 0.07
        lr: float = 1e-3
        epochs: int = 1
        #: "blur_jpeg" (σ ~ U[0, 3] and q ∈ {30, 100}, each with prob 0.5) or "none" (crop and flip only).
        augment: str = "blur_jpeg"
        select: str | None = "last"

    def __init__(self, cfg: Config | None = None):
        super().__init__(cfg)
        c = self.cfg
        if c.augment not in ("blur_jpeg", "none") or c.nproj < 1 or c.proj_dim < 1:
            raise ConfigError(f"Detector 'rine' needs augment 'blur_jpeg' or 'none', nproj >= 1 and proj_dim >= 1; "
                              f"got {c.augment!r}, {c.nproj}, {c.proj_dim}.")
        self.backbone = build_backbone(c.backbone, image_size=c.image_size)
        self.backbone.requires_grad_(False)
        bb = self.backbone
        dims = bb.layer_dims if bb.kind == "vit" else [*bb.layer_dims, bb.embed_dim]
        first = nn.Linear(dims[0], c.proj_dim) if bb.kind == "vit" else PerTapLinear(dims, c.proj_dim)
        self.proj1 = _projection(first, c.proj_dim, c.nproj, c.dropout)
        self.alpha = nn.Parameter(torch.randn(1, len(dims), c.proj_dim))
        self.proj2 = _projection(nn.Linear(c.proj_dim, c.proj_dim), c.proj_dim, c.nproj, c.dropout)
        self.head = nn.Sequential(nn.Linear(c.proj_dim, c.proj_dim), nn.ReLU(), nn.Dropout(c.dropout),
                                  nn.Linear(c.proj_dim, c.proj_dim), nn.ReLU(), nn.Dropout(c.dropout),
                                  nn.Linear(c.proj_dim, 1))

    def data_config(self) -> DataConfig:
        """No resizing: crops of ``image_size`` (random in training, center at test), CLIP mean/std."""
        return self.backbone.data_config(self.cfg.image_size, resize="center_crop")

    def transform(self, train: bool):
        """Blur/JPEG augmentation, then random crop and flip (train); center crop (eval)."""
        augment = BlurJpegChoice() if self.cfg.augment == "blur_jpeg" else None
        return build_transform(self.data_config(), train=train, augment=augment)

    @torch.no_grad()
    def taps(self, images: Tensor) -> Tensor:
        """ViT: [B, T, D] class tokens at each block's ``ln_2`` output; CNN: [B, Σ dᵢ] pooled stages + head."""
        bb = self.backbone
        if bb.kind == "vit":
            states, _ = bb.forward_parts(images, "mlp_norm")
            return torch.stack([s.global_token for s in states], dim=1).float()
        states, embedding = bb.forward_layers(images)
        return torch.cat([s.global_token for s in states] + [embedding], dim=1).float()

    def forward(self, images: Tensor, return_features: bool = False):
        """One logit per image; with ``return_features`` also the second projection's output z."""
        h = self.proj1(self.taps(images))
        z = self.proj2((torch.softmax(self.alpha, dim=1) * h).sum(dim=1))
        logits = self.head(z).squeeze(1)
        return (logits, z) if return_features else logits

    def train_step(self, batch: dict[str, Tensor], ctx) -> dict[str, Tensor]:
        """Summed BCE + supcon_weight · SupCon(normalised z), through ``ctx.model``."""
        logits, z = ctx.model(batch["image"], return_features=True)
        bce = F.binary_cross_entropy_with_logits(logits.float(), batch["label"].float(), reduction="sum")
        con = supcon(F.normalize(z, dim=-1), batch["label"], self.cfg.temperature, self.cfg.temperature)
        loss = bce + self.cfg.supcon_weight * con
        ctx.accelerator.backward(loss)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.detach(), "bce_sum": bce.detach(), "supcon": con.detach()}

    def configure_optimizer(self, total_steps: int):
        """Adam, no weight decay, constant learning rate (the step decay at epochs 6 and 11 never fires)."""
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.cfg.lr), None

    def load_checkpoint(self, state: dict[str, Tensor], where: str, metadata: dict[str, str]) -> None:
        """The released ``model_*_trainable.pth`` holds exactly the trainable tensors; name its settings on a
        mismatch (1 class: nproj 4, proj_dim 1024; 2 classes: 4, 128; 4 classes: 2, 1024)."""
        released = "alpha" in state and not any(k.startswith("backbone.") for k in state)
        if released:
            linears = {k.split(".")[1] for k in state if k.startswith("proj1.") and k.endswith(".weight")}
            nproj, dim = len(linears), state["alpha"].shape[-1]
            if (nproj, dim) != (self.cfg.nproj, self.cfg.proj_dim):
                raise ConfigError(f"Checkpoint {where} is a RINE model with nproj {nproj} and proj_dim {dim}; run "
                                  f"with -o nproj={nproj} -o proj_dim={dim}.")
        super().load_checkpoint(state, where, metadata)
