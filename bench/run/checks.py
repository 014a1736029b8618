"""Run-time checks :func:`bench.api.run` makes before and during a run.

Before any data is read or weights are loaded: the output directory is writable. Before the first
real batch: every file is readable (:func:`check_files`), and the adapter contract, on a throwaway copy of the built detector (``bench.testing``'s
checks, each failure one sentence). During the run: every score and loss is a finite number.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError, DataError, DetectorError, ImageError

if TYPE_CHECKING:
    from bench.data.splits import ResolvedSplit

#: A training loss this many times the first step's loss (and above 1e3) means training diverged.
DIVERGENCE_FACTOR = 1e4
#: Trainable parameters whose L2 norm grew this many times (over max(their norm at the start, 1)) diverged:
#: caught after the first step and at every epoch's end, where no later loss would show it.
PARAMETER_GROWTH = 1e4
#: A score (logit) beyond this magnitude is no trained classifier's: sigmoid saturates at |logit| ~ 17.
SCORE_BOUND = 1e8
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
        extreme = _extreme_settings(detector) if "overflow" in str(err).lower() or isinstance(err, OverflowError) \
            else []
        if extreme:
            raise DetectorError(f"Detector {name!r} failed its contract check with {type(err).__name__} "
                                f"({str(err)[:150]}) because {' and '.join(extreme)} is too large for the arithmetic; "
                                f"use a smaller value (e.g. -o lr=1e-4).") from None
        raise DetectorError(f"Detector {name!r} failed its contract check with {type(err).__name__}: "
                            f"{str(err)[:300]} (run bench.testing.check_detector in its tests for the "
                            f"traceback).") from None
    finally:
        torch.random.set_rng_state(rng)  # the check must not change the run's random stream
        del probe


def _extreme_settings(detector) -> list[str]:
    """``name=value`` of the detector's float settings of magnitude >= 1e6 (the likely cause of an overflow)."""
    cfg = getattr(detector, "cfg", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return []
    return [f"{f.name}={getattr(cfg, f.name):g}" for f in dataclasses.fields(cfg)
            if isinstance(getattr(cfg, f.name), float) and abs(getattr(cfg, f.name)) >= 1e6]


def require_finite(values: np.ndarray, ids: Sequence[str], absent: set[int], detector: str, what: str,
                   bound: float | None = None) -> None:
    """Raise :class:`DetectorError` when a row not in ``absent`` has a non-finite value (or one beyond ``bound``).

    ``values`` is [N] scores or [N, D] features in table order; ``absent`` the rows skipped on
    purpose (``--skip-bad-images``), which alone may be NaN. Scores are checked with
    ``bound=SCORE_BOUND``: a logit of 1e30 is finite but comes only from diverged weights.
    """
    flat = values.reshape(len(values), -1)
    bad = ~np.isfinite(flat).all(axis=1)
    huge = np.zeros_like(bad) if bound is None else (np.abs(np.nan_to_num(flat, nan=0.0)) > bound).any(axis=1)
    if absent:
        bad[sorted(absent)] = False
        huge[sorted(absent)] = False
    if bad.any():
        rows = np.flatnonzero(bad)
        first = ", ".join(str(ids[i]) for i in rows[:3])
        raise DetectorError(f"Detector {detector!r} returned non-finite {what} (NaN or inf) for {len(rows)} of "
                            f"{len(values)} images (first: {first}); a score must be a finite logit — check the "
                            f"detector's forward and its settings (e.g. lr) rather than dropping those images.")
    if huge.any():
        rows = np.flatnonzero(huge)
        peak = float(np.abs(np.nan_to_num(flat[rows], nan=0.0)).max())
        raise DetectorError(f"Detector {detector!r} returned {what} of magnitude up to {peak:.3g} for {len(rows)} of "
                            f"{len(values)} images (first: {ids[rows[0]]}), beyond {bound:.0e}, which no trained "
                            "classifier's logit reaches: training diverged or the forward is broken, so lower the "
                            "learning rate (-o lr=...) or check the detector.")


class LossGuard:
    """Stops training at the first non-finite or diverged loss or parameters, naming the step and what to change.

    The loss of a step is computed before its update, so the update of the first step (and of the
    last) shows in no loss: :meth:`check_parameters` looks at the trainable parameters themselves.
    """

    def __init__(self, detector: str, first: float | None = None, start_norm: float | None = None):
        self.detector = detector
        #: The first step's loss (restored on resume, so divergence is judged against the same start).
        self.first: float | None = first
        #: L2 norm of the trainable parameters before training (restored on resume).
        self.start_norm: float | None = start_norm

    def check_parameters(self, step: int, model) -> None:
        """Raise :class:`DetectorError` when the trainable parameters are non-finite or exploded at ``step``."""
        import torch

        params = [p.detach() for p in model.parameters() if p.requires_grad]
        if not params:
            return
        # float64 norms: a float32 parameter of 1e30 squared overflows float32, not float64.
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p, dtype=torch.float64)
                                                           for p in params])))
        if self.start_norm is None:
            self.start_norm = norm
            return
        if not math.isfinite(norm):
            raise DetectorError(f"Training of detector {self.detector!r} made its trainable parameters non-finite at "
                                f"step {step}; lower the learning rate (-o lr=...) or check the detector's loss.")
        if norm > PARAMETER_GROWTH * max(self.start_norm, 1.0):
            raise DetectorError(f"Training of detector {self.detector!r} diverged at step {step} (the trainable "
                                f"parameters' norm went from {self.start_norm:.3g} to {norm:.3g}); lower the learning "
                                f"rate (-o lr=...) or check the detector's loss.")

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


def splits_by_name(splits: dict[str, ResolvedSplit]) -> dict[str, ResolvedSplit]:
    """Index resolved splits by their own name (``train``, ``val``, test names)."""
    return {s.name: s for s in splits.values()}


def check_files(splits: dict[str, ResolvedSplit], full: bool, skip: bool, runner=None
                ) -> dict[str, set[int]]:
    """Check every file before the run: cheap checks, or a full decode with ``full``.

    The main process checks and the others receive its findings (one pass over the files, not one
    per process). Stops with the list of bad files unless ``skip`` (then returns the rows to leave out).
    """
    from accelerate.utils import broadcast_object_list

    found: list = [None]
    if runner is None or runner.is_main:
        found[0] = _bad_files(splits, full)
    if runner is not None and runner.accelerator.num_processes > 1:
        broadcast_object_list(found)
    bad, listing = found[0]
    if listing and not skip:
        shown = "; ".join(listing[:10]) + (f"; and {len(listing) - 10} more" if len(listing) > 10 else "")
        raise ImageError(f"{len(listing)} image file(s) cannot be used: {shown}. Fix or remove them, or pass "
                         "--skip-bad-images to leave them out (the results then record how many were skipped).")
    for name, rows in bad.items():
        split = splits_by_name(splits)[name]
        if len(rows) == len(split.table):
            raise DataError(f"Every image of split {name!r} is unreadable; nothing is left to use.")
    return bad


def _bad_files(splits: dict[str, ResolvedSplit], full: bool) -> tuple[dict[str, set[int]], list[str]]:
    bad: dict[str, set[int]] = {}
    listing: list[str] = []
    for split in splits.values():
        table = split.table
        for source_name, source in split.sources.items():
            rows = table.index[table["source"] == source_name]
            row_of = dict(zip(table.loc[rows, "id"].tolist(), rows.tolist()))
            check = source.find_bad_images if full else source.check_cheap
            for item_id, reason in check(table.loc[rows]):
                bad.setdefault(split.name, set()).add(int(row_of[item_id]))
                listing.append(reason)
    return bad, listing
