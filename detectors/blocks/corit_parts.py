"""Pieces of CoRIT (corit.md §3–§6): layer lists, the Contrastive Gradient Proxy statistics, the
Region Refinement Mask, Regional Signal Injection, and the batch diagnostics that are logged.

Everything that runs inside a training pass is tensor-only (no ``.item()``/``.tolist()`` and no
boolean-mask indexing), so on a GPU the hooks never wait for the device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import ConfigError
from detectors.blocks.backbones import LayerState

#: Where Regional Signal Injection acts (corit.md §5): ``stream`` (v2) or ``readout`` (v1).
RSI_MODES = ("stream", "readout")


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


def cgp_directions(means: dict[int, Tensor], updates: Tensor, momentum: float) -> dict[int, Tensor]:
    """ĉ_l = CGP_l/‖CGP_l‖ per layer from [2, C] biased running means (row 0 real, row 1 fake).

    The bias correction 1/(1 − m^updates) depends on the class only, so it is computed once.
    """
    sign = torch.arange(2, device=updates.device) * 2 - 1  # −real + fake
    weights = sign / (1 - momentum ** updates.float()).clamp(min=1e-12)
    directions = {}
    for i, mean_raw in means.items():
        cgp = weights.to(mean_raw.dtype) @ mean_raw
        directions[i] = cgp / cgp.norm().clamp(min=1e-12)
    return directions


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


def injection(c: Tensor, r: Tensor, alpha: float) -> Tensor:
    """RSI's update of the global token: α·(‖c‖ / (‖r‖ + 1e-6))·r, per image (c ← c + this)."""
    return (alpha * c.norm(dim=-1, keepdim=True) / (r.norm(dim=-1, keepdim=True) + 1e-6)) * r


def class_sums(signal: Tensor, labels: Tensor) -> Tensor:
    """Per-class sums [2, C] of per-sample signals [B, C] (row 0 real, row 1 fake)."""
    return torch.zeros(2, signal.shape[1], dtype=signal.dtype, device=signal.device).index_add_(
        0, labels, signal)


def class_counts(labels: Tensor) -> Tensor:
    """Samples per class [2] (row 0 real, row 1 fake); unlike ``bincount`` it never syncs a GPU."""
    return (labels[:, None] == torch.arange(2, device=labels.device)).sum(0)


def class_means(signal: Tensor, labels: Tensor, inv_counts: Tensor) -> Tensor:
    """Per-class batch means [2, C]; ``inv_counts`` = 1 / max(1, samples per class) (absent: zeros)."""
    return class_sums(signal, labels) * inv_counts[:, None]


def dispersion(signal: Tensor, labels: Tensor, inv_counts: Tensor) -> Tensor:
    """Noise of the contrastive signal: mean over samples of ‖s(x) − (its class's batch mean)‖².

    With a(x) = s(x) − mu_other for fakes and mu_other − s(x) for reals (the sample's contribution
    to CGP, signed by its label), ‖a(x) − CGP‖² is exactly this within-class dispersion.
    """
    return ((signal - class_means(signal, labels, inv_counts)[labels]) ** 2).sum(1).mean()


def contrast_norm(global_tokens: Tensor, labels: Tensor, inv_counts: Tensor) -> Tensor:
    """‖CGP‖ measured on the global token over the batch: ‖mean norm(c | fake) − mean norm(c | real)‖.

    Meaningful only when both classes are in the batch (the caller drops it otherwise).
    """
    means = class_means(channel_norm(global_tokens.detach().float()), labels, inv_counts)
    return (means[1] - means[0]).norm()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over processes in place when ``torch.distributed`` is initialised; return it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


@dataclass
class Pass:
    """What one CoRIT forward pass carries between the layer hooks."""

    #: Labels of an armed pass (CGP statistics are collected), else None.
    labels: Tensor | None
    #: A warm-up pass: CGP accumulates over all regions (the mask takes over at the first step).
    warmup: bool = False
    #: Samples per class in the batch (armed passes), and 1 / max(1, that) for batch class means.
    counts: Tensor | None = None
    inv_counts: Tensor | None = None
    #: ĉ_l per CGP layer, once CGP has seen both classes (the mask and injection need it).
    direction: dict[int, Tensor] = field(default_factory=dict)
    sums: dict[int, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)
    #: Injected read-out vectors (``rsi_mode: readout`` on backbones whose global token is not in the stream).
    injected: dict[int, Tensor] = field(default_factory=dict)


def check_settings(cfg) -> None:
    """ConfigError for CoRIT settings that need no backbone (layer lists are checked once it is built)."""
    if cfg.rsi_mode not in RSI_MODES:
        raise ConfigError(f"Setting 'rsi_mode' of detector corit is {cfg.rsi_mode!r}; use 'stream' (inject inside "
                          f"the network, v2) or 'readout' (CNNs inject into the read-out vector only, v1).")
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


def layer_step(cfg, run: Pass, i: int, state: LayerState, in_stream: bool) -> LayerState | None:
    """CoRIT at CGP layer ``i``: CGP statistics (armed passes), RRM mask, RSI injection.

    Returns the layer's edited state when injection goes into the stream (``in_stream``: the global
    token is part of it, as a ViT's class token), else None. Without a global token in the stream,
    ``rsi_mode: stream`` shifts every region token by the update (the global token is their mean)
    and ``readout`` records the injected vector in ``run.injected`` for HRI.
    """
    c, p = state.global_token, state.tokens
    direction, idx = run.direction.get(i), None
    if run.labels is not None or (direction is not None and cfg.rrm):
        with torch.no_grad():
            z = channel_norm(p.detach().float())
            idx = None if direction is None else top_regions(z, direction, cfg.rrm_keep)
    if run.labels is not None:
        with torch.no_grad():
            full = z.mean(1)
            masked = None if idx is None else gather_mean(z, idx)
            run.sums[i] = class_sums(masked if cfg.rrm and masked is not None and not run.warmup else full,
                                     run.labels)
            run.logs[f"cgp_var_full_l{i}"] = dispersion(full, run.labels, run.inv_counts)
            if masked is not None:
                run.logs[f"cgp_var_masked_l{i}"] = dispersion(masked, run.labels, run.inv_counts)
    if not cfg.rsi:
        return None
    r = gather_mean(p, idx) if (cfg.rrm and idx is not None) else p.mean(1)
    delta = injection(c, r, cfg.rsi_alpha)
    injected = c + delta
    if run.labels is not None:
        run.logs[f"cgp_norm_l{i}"] = contrast_norm(c, run.labels, run.inv_counts)
        run.logs[f"cgp_norm_inj_l{i}"] = contrast_norm(injected, run.labels, run.inv_counts)
    if in_stream:
        return LayerState(injected, p)
    if cfg.rsi_mode == "readout":
        run.injected[i] = injected
        return None
    return LayerState(injected, p + delta[:, None])


@torch.no_grad()
def update_means(buffers: dict[int, Tensor], updates: Tensor, batches: Tensor, run: Pass, momentum: float) -> None:
    """Count-weighted all-reduce of the pass's class sums, then a momentum update per present class.

    ``buffers``: layer → its [2, C] running means; ``updates`` (per class) and ``batches`` count
    what was folded in.
    """
    flat = all_reduce_sum(torch.cat([run.sums[i].flatten() for i in buffers] + [run.counts.float()]))
    counts = flat[-2:]
    present, offset = counts > 0, 0
    for buf in buffers.values():
        mean = flat[offset:offset + buf.numel()].view_as(buf) / counts.clamp(min=1)[:, None]
        offset += buf.numel()
        buf.copy_(torch.where(present[:, None], momentum * buf + (1 - momentum) * mean, buf))
    updates += present.long()
    batches += 1


def with_layer_means(logs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-layer logs ``<key>_l<i>`` plus, for each key, their mean over layers as ``<key>``."""
    out = dict(logs)
    for key in ("cgp_var_full", "cgp_var_masked", "cgp_norm", "cgp_norm_inj"):
        values = [v for k, v in logs.items() if k.rsplit("_l", 1)[0] == key]
        if values:
            out[key] = torch.stack(values).mean()
    return out
