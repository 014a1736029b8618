"""Run-time checks :func:`bench.api.run` makes before and during a run.

Before any data is read or weights are loaded: the output directory is writable. Before the first
real batch: the adapter contract, on a throwaway copy of the built detector (``bench.testing``'s
checks, each failure one sentence). During the run: every score and loss is a finite number.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError, DetectorError

#: A training loss this many times the first step's loss (and above 1e3) means training diverged.
DIVERGENCE_FACTOR = 1e4
#: Random images the run-time contract check feeds the throwaway copy.
CONTRACT_BATCH = 2


def check_writable(out_dir: Path) -> None:
    """Raise :class:`BenchError` unless run directories can be created under ``out_dir`` (nothing is created)."""
    out_dir = Path(out_dir).absolute()
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    why = None
    if not probe.is_dir():
        why = f"{probe} is not a directory"
    elif not os.access(probe, os.W_OK | os.X_OK):
        why = f"{probe} is not writable"
    if why:
        raise BenchError(f"Run directories cannot be written under --out {out_dir} ({why}); choose a writable "
                         f"--out before the run starts.")


def check_contract(detector, name: str, accelerator, train: bool, batch_size: int = CONTRACT_BATCH) -> None:
    """The cheap part of :func:`bench.testing.check_detector` on a deep copy of ``detector``.

    ``forward`` gives ``[B]`` floats; for ``fits_features`` detectors ``features`` gives ``[B, D]``;
    with ``train``, the declared warm-up then one ``train_step`` (through ``ctx.model``, returning
    numbers, moving a trainable parameter). The real weights are untouched. Each failure is a
    :class:`DetectorError` naming the detector and the rule.
    """
    import torch

    from bench.testing import _images, check_features, check_forward, check_train_step

    probe = copy.deepcopy(detector).cpu()
    rng = torch.random.get_rng_state()
    try:
        x = _images(probe, batch_size, train=False)
        check_forward(probe, x)
        if train and probe.fits_features:
            check_features(probe, x)
        elif train:
            check_train_step(probe, batch_size, lambda model, optimizer: (model, optimizer), accelerator)
    except AssertionError as err:
        raise DetectorError(f"Detector {name!r} breaks the adapter contract: {err} (run "
                            f"bench.testing.check_detector in its tests for details).") from None
    except BenchError:
        raise
    except Exception as err:  # noqa: BLE001 (the adapter's own code failed: say so in one sentence)
        raise DetectorError(f"Detector {name!r} failed its contract check with {type(err).__name__}: "
                            f"{str(err)[:300]} (run bench.testing.check_detector in its tests for the "
                            f"traceback).") from None
    finally:
        torch.random.set_rng_state(rng)  # the check must not change the run's random stream
        del probe


def require_finite(values: np.ndarray, ids: Sequence[str], absent: set[int], detector: str, what: str) -> None:
    """Raise :class:`DetectorError` when a row not in ``absent`` has a non-finite value.

    ``values`` is [N] scores or [N, D] features in table order; ``absent`` the rows skipped on
    purpose (``--skip-bad-images``), which alone may be NaN.
    """
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if absent:
        bad[sorted(absent)] = False
    if bad.any():
        rows = np.flatnonzero(bad)
        first = ", ".join(str(ids[i]) for i in rows[:3])
        raise DetectorError(f"Detector {detector!r} returned non-finite {what} (NaN or inf) for {len(rows)} of "
                            f"{len(values)} images (first: {first}); a score must be a finite logit — check the "
                            f"detector's forward and its settings (e.g. lr) rather than dropping those images.")


class LossGuard:
    """Stops training at the first non-finite or diverged loss, naming the step and what to look at."""

    def __init__(self, detector: str, first: float | None = None):
        self.detector = detector
        #: The first step's loss (restored on resume, so divergence is judged against the same start).
        self.first: float | None = first

    def check(self, step: int, out: Mapping[str, Any]) -> None:
        """Raise :class:`DetectorError` if the logged ``loss`` of ``step`` is non-finite or diverged."""
        if "loss" not in out:
            return
        loss = float(out["loss"])
        if self.first is None and math.isfinite(loss):
            self.first = max(abs(loss), 1e-3)
        diverged = self.first is not None and loss > max(1e3, DIVERGENCE_FACTOR * self.first)
        if not math.isfinite(loss):
            raise DetectorError(f"Training of detector {self.detector!r} produced a non-finite loss ({loss}) at step "
                                f"{step}; check the detector's outputs and loss, or lower the learning rate (-o lr=...).")
        if diverged:
            raise DetectorError(f"Training of detector {self.detector!r} diverged at step {step} (loss {loss:.3g}, "
                                f"{loss / self.first:.2g}× the first step's); lower the learning rate (-o lr=...) "
                                f"or check the detector's loss.")

