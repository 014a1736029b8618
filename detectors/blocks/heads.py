"""Classification heads shared by adapters: one logit, or a two-class head read as one logit.

Methods published with a two-way softmax (Effort's DeepfakeBench variant, GenD) keep their
``Linear(D, 2)`` so that released weights load as they are; the harness's single logit is then
``z[1] − z[0]``, whose sigmoid is the softmax probability of class 1 (fake), and binary cross-entropy
on it equals the two-class cross-entropy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench.errors import ConfigError


class LogitHead(nn.Module):
    """``Linear(dim, classes)`` → one logit per image (``classes`` 1, or 2 read as z[1] − z[0]).

    ``normalise``: L2-normalise the input first (GenD's "LinearNorm" head). ``init_std``: draw the
    weight from N(0, std²) with a zero bias (UnivFD's head); None keeps PyTorch's default init.
    """

    def __init__(self, dim: int, classes: int = 1, normalise: bool = False, init_std: float | None = None):
        super().__init__()
        if classes not in (1, 2):
            raise ConfigError(f"A head has 1 (one logit) or 2 (two-class softmax) outputs, got {classes}.")
        self.normalise = normalise
        self.linear = nn.Linear(dim, classes)
        if init_std is not None:
            nn.init.normal_(self.linear.weight, std=init_std)
            nn.init.zeros_(self.linear.bias)

    def forward(self, features: Tensor) -> Tensor:
        """[B, dim] → [B] logits."""
        z = self.linear(F.normalize(features, dim=-1) if self.normalise else features)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z[:, 0]

    @torch.no_grad()
    def load_released(self, weight: Tensor, bias: Tensor, where: str) -> None:
        """Copy a released head; a two-class head loads into a one-logit head as row 1 − row 0."""
        classes, dim = self.linear.weight.shape
        if weight.ndim != 2 or weight.shape[1] != dim or weight.shape[0] not in (1, 2) or bias.shape != weight.shape[:1]:
            raise ConfigError(f"Checkpoint {where}: the head has weight {tuple(weight.shape)} and bias "
                              f"{tuple(bias.shape)}; this detector's head reads {dim} features.")
        if weight.shape[0] == 2 and classes == 1:
            weight, bias = weight[1:] - weight[:1], bias[1:] - bias[:1]
        elif weight.shape[0] != classes:
            raise ConfigError(f"Checkpoint {where}: a one-logit head cannot load into a two-class head; set "
                              f"head_classes=1.")
        self.linear.weight.copy_(weight)
        self.linear.bias.copy_(bias)
