"""Reusable train steps. A detector's ``train_step`` hook calls one of these.

Steps work through ``ctx.model`` (the Accelerate-prepared module) so DDP gradient sync and
autocast apply, and through ``ctx.optimizer`` so any base optimizer composes with them.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.plugin.types import StepContext


def standard_step(detector: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
    """Forward, loss, backward, optimizer step, zero grad."""
    logits = ctx.model(batch["image"])
    loss = detector.loss(logits, batch)
    ctx.accelerator.backward(loss)
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach()}


def sam_step(detector: nn.Module, batch: dict[str, Tensor], ctx: StepContext, rho: float,
             adaptive: bool = False) -> dict[str, Tensor]:
    """One Sharpness-Aware Minimization step (Foret et al. 2021) over any base optimizer.

    1. ``g = ∇L(w)`` on the batch, through ``ctx.model`` under ``accelerator.no_sync`` (each
       process perturbs with its own local gradient, as in the reference DDP recipe);
    2. ``ε = ρ·g/‖g‖`` with the norm taken over all trainable parameters of ``ctx.optimizer``
       jointly; with ``adaptive`` (ASAM, Kwon et al. 2021, as in davda54/sam)
       ``ε = ρ·w²·g/‖|w|·g‖``;
    3. ``g' = ∇L(w + ε)`` on the same batch, with gradient sync; BatchNorm layers in training mode
       do not update their running statistics in this pass (they would describe ``w + ε``);
    4. restore ``w`` exactly (a saved copy, not ``w + ε − ε``), ``ctx.optimizer.step()`` with ``g'``,
       zero grad.

    ``rho == 0`` is exactly :func:`standard_step` (one pass; the perturbation would be zero), so a
    radius sweep's ρ = 0 point is the plain baseline. There is no special optimizer class, so it
    composes with Accelerate's wrapped optimizer and any scheduler.

    Precision: use fp32 or bf16. Under fp16 the two backward passes share one GradScaler, an
    overflow in the first pass gives a NaN perturbation for that step and a skipped update; it is
    not supported. Gradient accumulation is not supported either (the perturbation needs the
    gradient of the whole batch at each step).

    Returns ``{"loss": first-pass loss, "loss_perturbed": loss at w + ε}`` (detached).
    """
    if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho >= 0):
        raise ConfigError(f"The SAM radius rho must be a non-negative number, got {rho!r}; set rho >= 0.")
    if rho > 0 and ctx.accelerator.mixed_precision == "fp16":
        raise ConfigError("SAM cannot run under --precision fp16 (one loss scaler for two passes gives NaN "
                          "perturbations); use --precision bf16 or no.")
    if rho == 0:
        out = standard_step(detector, batch, ctx)
        return {"loss": out["loss"], "loss_perturbed": out["loss"]}
    params = [p for group in ctx.optimizer.param_groups for p in group["params"] if p.requires_grad]
    with ctx.accelerator.no_sync(ctx.model):
        loss = detector.loss(ctx.model(batch["image"]), batch)
        ctx.accelerator.backward(loss)
    saved = _perturb(params, rho, adaptive)
    with frozen_bn_stats(ctx.model):
        loss_perturbed = detector.loss(ctx.model(batch["image"]), batch)
        ctx.accelerator.backward(loss_perturbed)
    with torch.no_grad():
        for p, w in saved:
            p.copy_(w)
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach(), "loss_perturbed": loss_perturbed.detach()}


@torch.no_grad()
def _perturb(params: list[nn.Parameter], rho: float, adaptive: bool) -> list[tuple[nn.Parameter, Tensor]]:
    """Move every parameter with a gradient to ``w + ε``; clear the gradients; return the saved ``w``."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return []
    scaled = [(p.abs() * p.grad if adaptive else p.grad).float() for p in with_grad]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s) for s in scaled]))
    scale = rho / (norm + 1e-12)
    saved = []
    for p in with_grad:
        saved.append((p, p.detach().clone()))
        e_w = (p * p if adaptive else 1.0) * p.grad * scale.to(p.dtype)
        p.add_(e_w)
        # The second pass must see g' alone; the optimizer steps with it.
        p.grad = None
    return saved


#: BatchNorm layers per model, found once: walking every module at every SAM step costs ~5 ms.
_BATCH_NORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Keep the running statistics (and batch counters) of training-mode BatchNorm layers unchanged
    for one pass: SAM's perturbed pass, or a forward-only warm-up pass (CoRIT's CGP warm-up)."""
    if model not in _BATCH_NORMS:
        _BATCH_NORMS[model] = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = []
    for m in _BATCH_NORMS[model]:
        if m.training and m.track_running_stats:
            count = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
            saved.append((m, m.momentum, count))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
