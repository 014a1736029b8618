"""Reusable train steps. A detector's ``train_step`` hook calls one of these.

Steps work through ``ctx.model`` (the Accelerate-prepared module) so DDP gradient sync and
autocast apply, and through ``ctx.optimizer`` so any base optimizer composes with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from bench.detector import Detector, StepContext


def standard_step(detector: Detector, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
    """Forward, loss, backward, optimizer step, zero grad."""
    logits = ctx.model(batch["image"])
    loss = detector.loss(logits, batch)
    ctx.accelerator.backward(loss)
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach()}
