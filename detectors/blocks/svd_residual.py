"""Effort's orthogonal subspace decomposition as a ``torch.nn.utils.parametrize`` parametrization.

A weight matrix W (a linear layer's, or a 1×1 convolution's read as C_out × C_in) is split by its
thin SVD W = U·diag(S)·Vᵀ into a frozen principal part, the top r = min(m, n) − k singular triplets,
and a trainable residual, the k smallest triplets (Yan et al., "Orthogonal Subspace Decomposition
for Generalizable AI-Generated Image Detection", ICML 2025). The layer then computes with

    W_eff = W_main + U_res·diag(S_res)·V_res,   W_main = W − U₀·diag(S₀)·V₀

where (U₀, S₀, V₀) is the residual at initialisation (a frozen buffer) and (U_res, S_res, V_res) the
trainable copy. Storing W itself (frozen) instead of the product U_r·diag(S_r)·V_rᵀ is the same
decomposition without a second full-size copy: W_main differs from the published product only by
float rounding, and at initialisation W_eff is W bit for bit.

A fused query/key/value weight is decomposed per block of rows (``chunks=3``), as Effort decomposes
the separate q, k and v projections.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from bench.errors import ConfigError


class SVDResidual(nn.Module):
    """Parametrization ``W ↦ W + U·diag(S)·V − U₀·diag(S₀)·V₀`` with (U, S, V) trainable.

    Shapes, per chunk c: ``u_residual`` [c, m, k], ``s_residual`` [c, k], ``v_residual`` [c, k, n];
    ``*_init`` buffers hold the same tensors as initialised (or as loaded from a released file).
    """

    def __init__(self, weight: Tensor, rank: int, chunks: int = 1):
        super().__init__()
        matrix = as_matrices(weight.detach(), chunks).float()
        if not 1 <= rank < min(matrix.shape[-2:]):
            raise ConfigError(f"Effort's residual rank must be between 1 and {min(matrix.shape[-2:]) - 1} for a "
                              f"{tuple(matrix.shape[-2:])} weight, got {rank}; lower residual_rank.")
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        self.u_residual = nn.Parameter(u[..., -rank:].contiguous())
        self.s_residual = nn.Parameter(s[..., -rank:].contiguous())
        self.v_residual = nn.Parameter(vh[..., -rank:, :].contiguous())
        self.register_buffer("u_init", self.u_residual.detach().clone())
        self.register_buffer("s_init", self.s_residual.detach().clone())
        self.register_buffer("v_init", self.v_residual.detach().clone())

    @staticmethod
    def product(u: Tensor, s: Tensor, v: Tensor) -> Tensor:
        """U·diag(S)·V per chunk: [c, m, n]."""
        return (u * s.unsqueeze(-2)) @ v

    def residual(self) -> Tensor:
        """The trainable part U_res·diag(S_res)·V_res, [c, m, n]."""
        return self.product(self.u_residual, self.s_residual, self.v_residual)

    def forward(self, weight: Tensor) -> Tensor:
        """The effective weight, same shape and dtype as ``weight``."""
        delta = self.residual() - self.product(self.u_init, self.s_init, self.v_init)
        return weight + delta.reshape(weight.shape).to(weight.dtype)

    @torch.no_grad()
    def set_residual(self, u: Tensor, s: Tensor, v: Tensor) -> None:
        """Make (u, s, v) both the trainable residual and its initial value (used by checkpoint loaders)."""
        for name, value in (("u", u), ("s", s), ("v", v)):
            getattr(self, f"{name}_residual").copy_(value)
            getattr(self, f"{name}_init").copy_(value)


def as_matrices(weight: Tensor, chunks: int) -> Tensor:
    """A linear or 1×1-conv weight as ``chunks`` stacked matrices [chunks, m, n] (rows split evenly)."""
    rows = weight.shape[0]
    if rows % chunks:
        raise ConfigError(f"A weight with {rows} rows cannot be split into {chunks} equal q/k/v blocks.")
    return weight.reshape(chunks, rows // chunks, -1)


def attach(module: nn.Module, name: str, rank: int, chunks: int = 1) -> SVDResidual:
    """Re-parameterise ``module.<name>`` with an :class:`SVDResidual`; the original weight is frozen."""
    weight = getattr(module, name)
    weight.requires_grad_(False)
    svd = SVDResidual(weight, rank, chunks)
    parametrize.register_parametrization(module, name, svd)
    return svd


def pointwise_convs(model: nn.Module) -> list[nn.Conv2d]:
    """Every ungrouped 1×1 convolution of ``model`` (EfficientNet's expansion, projection and head convs)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]


def svd_modules(model: nn.Module) -> list[SVDResidual]:
    """The :class:`SVDResidual` parametrizations attached anywhere in ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, SVDResidual)]
