"""Pieces of CoRIT (corit.md §3–§6): layer lists, the Contrastive Gradient Proxy statistics, the
Region Refinement Mask, Regional Signal Injection, and the batch diagnostics that are logged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import ConfigError


def resolve_layers(value: object, n_layers: int, key: str, spec: str) -> list[int]:
    """``second_half``, ``lastN`` or a list of ints (negative allowed) → sorted layer indices.

    Raises ConfigError naming ``key`` when the value names layers the backbone does not have.
    """
    fix = f"use 'second_half', 'lastN' with 1 <= N <= {n_layers}, or a list of ints in [-{n_layers}, {n_layers})"
    where = f"Setting {key!r} is {value!r} but backbone {spec!r} has {n_layers} layers"
    if value == "second_half":
        return list(range(n_layers // 2, n_layers))
    if isinstance(value, str):
        if value.startswith("last") and value[4:].isdigit() and 1 <= int(value[4:]) <= n_layers:
            return list(range(n_layers - int(value[4:]), n_layers))
        raise ConfigError(f"{where}; {fix}.")
    ints = isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    if ints and value and all(-n_layers <= i < n_layers for i in value):
        return sorted({i % n_layers for i in value})
    raise ConfigError(f"{where}; {fix}.")


def channel_norm(x: Tensor) -> Tensor:
    """norm(z) = (z − mean(z)) / std(z) over channels, without parameters (corit.md §1)."""
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def cgp_direction(mean_raw: Tensor, updates: Tensor, momentum: float) -> Tensor:
    """ĉ = CGP/‖CGP‖ from a [2, C] biased running mean (row 0 real, row 1 fake), bias-corrected."""
    corrected = mean_raw / (1 - momentum ** updates.to(mean_raw.dtype)).clamp(min=1e-12)[:, None]
    cgp = corrected[1] - corrected[0]
    return cgp / cgp.norm().clamp(min=1e-12)


def top_regions(z: Tensor, direction: Tensor, keep: float) -> Tensor:
    """RRM: indices [B, ⌈keep·N⌉] of each image's regions with the largest score along ``direction``.

    The spec's score subtracts the image's mean token first; that shifts all of an image's scores
    by the same amount, so the ranking (all the mask uses) is computed without it.
    """
    k = max(1, math.ceil(keep * z.shape[1]))
    return (z @ direction).topk(k, dim=1).indices


def gather_mean(x: Tensor, idx: Tensor) -> Tensor:
    """Mean over the selected regions: x [B, N, C], idx [B, k] → [B, C]."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1])).mean(1)


def inject(c: Tensor, r: Tensor, alpha: float) -> Tensor:
    """RSI: c ← c + α·(‖c‖ / (‖r‖ + 1e-6))·r, per image."""
    scale = alpha * c.norm(dim=-1, keepdim=True) / (r.norm(dim=-1, keepdim=True) + 1e-6)
    return c + scale * r


def class_sums(signal: Tensor, labels: Tensor) -> Tensor:
    """Per-class sums [2, C] of per-sample signals [B, C] (row 0 real, row 1 fake)."""
    return torch.zeros(2, signal.shape[1], dtype=signal.dtype, device=signal.device).index_add_(
        0, labels, signal)


def dispersion(signal: Tensor, labels: Tensor, present: list[bool]) -> Tensor:
    """Noise of the contrastive signal: mean over samples of ‖s(x) − (its class's batch mean)‖².

    With a(x) = s(x) − mu_other for fakes and mu_other − s(x) for reals (the sample's contribution
    to CGP, signed by its label), ‖a(x) − CGP‖² is exactly this within-class dispersion.
    """
    parts = [((signal[labels == c] - signal[labels == c].mean(0)) ** 2).sum(1) for c in (0, 1) if present[c]]
    return torch.cat(parts).mean()


def contrast_norm(global_tokens: Tensor, labels: Tensor) -> Tensor:
    """‖CGP‖ measured on the global token over the batch: ‖mean norm(c | fake) − mean norm(c | real)‖."""
    z = channel_norm(global_tokens.detach().float())
    return (z[labels == 1].mean(0) - z[labels == 0].mean(0)).norm()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over processes in place when ``torch.distributed`` is initialised; return it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


@dataclass
class Pass:
    """What one CoRIT forward pass carries between the layer hooks."""

    labels: Tensor | None
    #: CGP batches seen before this pass (masked accumulation starts once warm-up is over).
    warm: int = 0
    present: list[bool] = field(default_factory=lambda: [False, False])
    direction: dict[int, Tensor] = field(default_factory=dict)
    sums: dict[int, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)
    #: Injected global tokens of layers whose global token is not in the stream (CNNs).
    injected: dict[int, Tensor] = field(default_factory=dict)


def check_settings(cfg) -> None:
    """ConfigError for CoRIT settings that need no backbone (layer lists are checked once it is built)."""
    if (cfg.rrm or cfg.rsi) and not cfg.cgp:
        raise ConfigError("CoRIT settings rrm and rsi need the Contrastive Gradient Proxy; set cgp=true "
                          "or turn rrm and rsi off.")
    for key, ok, fix in [
        ("cgp_momentum", lambda v: 0 <= v < 1, "a number in [0, 1), e.g. 0.99"),
        ("rrm_keep", lambda v: 0 < v <= 1, "a fraction in (0, 1], e.g. 0.25"),
        ("rsi_alpha", lambda v: True, "a finite number, e.g. 0.2"),
        ("cgp_warmup_batches", lambda v: v >= 0 and float(v).is_integer(), "a whole number >= 0, e.g. 4"),
    ]:
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not ok(value):
            raise ConfigError(f"Setting {key!r} of detector corit is {value!r}; use {fix}.")
