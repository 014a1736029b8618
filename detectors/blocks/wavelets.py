"""One-level 2-D discrete wavelet transform in torch, with PyWavelets' conventions (no dependency).

Only what SAFE needs: the diagonal detail band (HH, PyWavelets' ``cD``) of ``dwt2`` with mode
``"symmetric"`` (half-sample symmetric extension: ``… x1 x0 | x0 x1 … x_{N-1} | x_{N-1} x_{N-2} …``),
per channel. Along one axis, with decomposition filter ``h`` of length F, output ``o`` is
``Σ_j h[j] · x_ext[2o + 1 − j]`` for ``o = 0 … ⌊(N + F − 1)/2⌋ − 1``, as PyWavelets computes it.
Filters are the decomposition filters PyWavelets lists for each wavelet.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

_A = 1.0 / math.sqrt(2.0)
_B = _A / 8.0
#: Decomposition (low-pass, high-pass) filters. bior1.3's high-pass is Haar's, padded to 6 taps.
WAVELETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "haar": ((_A, _A), (-_A, _A)),
    "bior1.3": ((-_B, _B, _A, _A, _B, -_B), (0.0, 0.0, -_A, _A, 0.0, 0.0)),
}


def _symmetric_index(n: int, taps: int) -> Tensor:
    """Indices into a length-``n`` axis that realise the extended signal the filter reads."""
    n_out = (n + taps - 1) // 2
    ext = torch.arange(2 - taps, 2 * n_out)  # x_ext positions 2o + 1 − j over all o, j
    ext = torch.where(ext < 0, -1 - ext, ext)
    return torch.where(ext >= n, 2 * n - 1 - ext, ext)


def _analyse(x: Tensor, taps: tuple[float, ...], dim: int) -> Tensor:
    """Filter + downsample ``x`` [B, C, H, W] along ``dim`` (2: rows, 3: columns)."""
    f = len(taps)
    if x.shape[dim] < f - 2:  # one mirror on each side must cover the filter's reach
        raise ValueError(f"Signal of length {x.shape[dim]} is too short for a {f}-tap wavelet")
    x = x.index_select(dim, _symmetric_index(x.shape[dim], f).to(x.device))
    # out[o] = Σ_m g[m] · xe[2o + m] with g the reversed filter: a stride-2 cross-correlation.
    g = torch.tensor(taps[::-1], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    kernel = g.view(1, 1, 1, f) if dim == 3 else g.view(1, 1, f, 1)
    stride = (1, 2) if dim == 3 else (2, 1)
    return F.conv2d(x, kernel.expand(c, 1, *kernel.shape[2:]).contiguous(), stride=stride, groups=c)


def dwt2_hh(x: Tensor, wavelet: str = "bior1.3") -> Tensor:
    """The HH (diagonal detail) band of a one-level 2-D DWT, per channel: ``[B, C, H', W']``.

    ``H' = ⌊(H + F − 1)/2⌋`` (H/2 for Haar on even sizes; (H + 5)//2 for bior1.3).
    """
    if wavelet not in WAVELETS:
        raise ValueError(f"Unknown wavelet {wavelet!r}; known: {', '.join(WAVELETS)}")
    high = WAVELETS[wavelet][1]
    return _analyse(_analyse(x, high, dim=3), high, dim=2)
