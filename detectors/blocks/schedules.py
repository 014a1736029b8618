"""Learning-rate schedules of the published recipes, laid over the steps a run will take.

The runner tells ``configure_optimizer`` the total number of steps; a recipe's schedule is written in
its own epochs (NPR: ×0.9 after epochs 10, 20, 30, 40 of 50). Each schedule here maps a step to the
fraction ``step / total`` of the run and places the recipe's epoch boundaries at the same
fractions of ``epochs``, so a run that trains every epoch of the recipe follows it exactly and a
shorter one (a protocol budget, ``--max-steps``) follows it compressed. The returned
:class:`torch.optim.lr_scheduler.LambdaLR` is stepped once per optimisation step by the runner.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def step_decay(optimizer: Optimizer, total_steps: int, epochs: int, every: int, factor: float) -> LambdaLR:
    """NPR: multiply by ``factor`` after each epoch ``k·every`` (0-based; epochs 10, 20, ... of 50 for every=10).

    In recipe epochs e (0-based, the one being trained) the multiplier is ``factor ** ((e − 1) // every)``.
    """
    per_epoch = max(total_steps, 1) / max(epochs, 1)

    def multiplier(step: int) -> float:
        epoch = int(step / per_epoch)
        return factor ** (max(epoch - 1, 0) // every) if every > 0 else 1.0

    return LambdaLR(optimizer, multiplier)


def warmup_cosine(optimizer: Optimizer, total_steps: int, epochs: int, warmup_epochs: float,
                  base_lr: float, min_lr: float) -> LambdaLR:
    """SAFE (ConvNeXt-V2 fine-tuning): linear warm-up from 0, then half-cosine from ``base_lr`` to ``min_lr``.

    Updated every step with the fractional epoch, as in the MAE/ConvNeXt-V2 training loop.
    """
    per_epoch = max(total_steps, 1) / max(epochs, 1)

    def multiplier(step: int) -> float:
        epoch = step / per_epoch
        if epoch < warmup_epochs:
            # One step ahead of the reference (whose first step has lr 0, a step that changes nothing).
            return min((step + 1) / per_epoch, warmup_epochs) / warmup_epochs
        span = max(epochs - warmup_epochs, 1e-12)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min((epoch - warmup_epochs) / span, 1.0)))
        return (min_lr + (base_lr - min_lr) * cosine) / base_lr

    return LambdaLR(optimizer, multiplier)


def linear_tail_decay(optimizer: Optimizer, total_steps: int, epochs: int, start_epoch: float) -> LambdaLR:
    """SBI: constant, then linear decay to 0 from ``start_epoch`` to the end of ``epochs`` (per epoch)."""
    per_epoch = max(total_steps, 1) / max(epochs, 1)

    def multiplier(step: int) -> float:
        epoch = int(step / per_epoch)
        if epoch < start_epoch:
            return 1.0
        return max(0.0, 1.0 - (epoch - start_epoch) / max(epochs - start_epoch, 1e-12))

    return LambdaLR(optimizer, multiplier)
