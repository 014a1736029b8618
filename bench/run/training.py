"""Gradient training with validation-based selection, warm-up passes, and a state saved every epoch.

After every epoch the runner writes ``<run_dir>/state/`` (trained weights, optimizer, scheduler,
RNG states, step, selection state, log); ``bench run --resume RUN_DIR`` continues from it and gives
the same results as a run never interrupted (on the same machine): the data order and the
augmentation are functions of (seed, epoch, row) alone, and every random stream is restored.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from bench.errors import ConfigError
from bench.metrics import HIGHER_IS_BETTER
from bench.plugin.detector import Detector
from bench.plugin.types import StepContext
from bench.plugin.weights import trained_state
from bench.run.checks import LossGuard
from bench.run.files import RESUME_HINT, make_dir, tensor_bytes, write_with

if TYPE_CHECKING:
    from accelerate import Accelerator

    from bench.data.splits import ResolvedSplit
    from bench.run.ledger import Ledger



class Runner(Protocol):
    """What the training loop uses of the runner that calls it (:class:`bench.run.runner.Runner`)."""

    accelerator: Accelerator
    opts: Any
    ledger: Ledger
    log: list[dict[str, Any]]
    name: str
    started: float
    is_main: bool

    def loader(self, split: ResolvedSplit, detector: Detector, train: bool, shuffle: bool | None = None,
               stream: int = 0, skip: set[int] | None = None) -> tuple[Any, Any]: ...

    def bar(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterable: ...

    def val_metrics(self, model, loader, split: ResolvedSplit, names: list[str]) -> dict[str, float]: ...


STATE_DIR = "state"
_STATE_FILE = "training.pt"


def fit_gradient(runner: Runner, detector: Detector, train: ResolvedSplit, val: ResolvedSplit, select: str,
                 epochs_budget: int | None, steps_budget: int | None, run_dir: Path | None,
                 round_index: int = 1) -> dict[str, Any]:
    """Train under the budget, validate after every epoch, keep the epoch ``select`` prefers.

    ``round_index``: the round of a temporal run this fit belongs to; its saved state says so.
    """
    acc, opts = runner.accelerator, runner.opts
    train_loader, sampler = runner.loader(train, detector, train=True)
    val_loader, _ = runner.loader(val, detector, train=False)
    wanted = getattr(detector.cfg, "epochs", 1)
    epochs = min(wanted, epochs_budget or wanted)
    per_epoch = len(sampler) // opts.batch_size
    if per_epoch == 0:
        raise ConfigError(f"The train split has {len(sampler)} images, fewer than --batch-size "
                          f"{opts.batch_size}; lower --batch-size.")
    caps = [c for c in (steps_budget, opts.max_steps) if c]
    total = min([epochs * per_epoch, *caps])
    optimizer, scheduler = detector.configure_optimizer(total)
    model, optimizer = acc.prepare(detector, optimizer)
    if scheduler is not None:
        scheduler = acc.prepare(scheduler)
    metric = select.split(":")[1] if select != "last" else None
    names = sorted({"auc", "ap", "acc", "eer"} | ({metric} if metric else set()))
    ctx = StepContext(model=model, optimizer=optimizer, accelerator=acc, scheduler=scheduler)
    progress = {"epoch": 0, "step": 0, "history": [], "best": {"value": None}}
    saved = load_state(run_dir, runner, detector, optimizer, scheduler, round_index) if run_dir is not None else None
    if saved is not None:
        progress = saved
    else:
        warm_up(runner, detector, train, ctx)
    guard = LossGuard(runner.name, progress.get("first_loss"), progress.get("start_norm"))
    guard.check_parameters(progress["step"], detector)  # the reference norm, on a fresh start
    step, history, best = progress["step"], progress["history"], progress["best"]
    for epoch in range(progress["epoch"], epochs):
        if step >= total:
            break
        model.train()
        train_loader.set_epoch(epoch)  # the prepared loader's epoch: accelerate re-sets the sampler from it
        for batch in runner.bar(train_loader, f"epoch {epoch + 1}/{epochs}"):
            batch = runner.ledger.training_batch(train, batch, train_loader.dataset.describe)
            if batch is None:  # a process's slice had no decodable image: every process skips the step
                runner.log.append({"event": "skipped_step", "epoch": epoch, "step": step})
                continue
            ctx.step = step
            out = detector.train_step(batch, ctx)
            if scheduler is not None:
                scheduler.step()
            step += 1
            values = numbers(out)
            guard.check(step, values)
            if step == 1:
                guard.check_parameters(step, detector)  # no earlier loss judges the first update
                runner.log.append({"event": "first_step", "unix_time": round(time.time(), 3),
                                   "seconds_since_runner": round(time.perf_counter() - runner.started, 3)})
            runner.log.append({"epoch": epoch, "step": step, **values})
            if step >= total:
                break
        guard.check_parameters(step, detector)  # the epoch's last update, before anything uses it
        val_metrics = runner.val_metrics(model, val_loader, val, names)
        history.append({"epoch": epoch, "step": step, "val": val_metrics})
        runner.log.append({"event": "validate", "epoch": epoch, "step": step, "val": val_metrics})
        if metric is not None:
            value = val_metrics[metric]
            better = best["value"] is None or (
                value > best["value"] if HIGHER_IS_BETTER[metric] else value < best["value"])
            if better:
                best = {"value": value, "epoch": epoch, "step": step, "state": _snapshot(detector)}
        if run_dir is not None:
            save_state(run_dir, runner, detector, optimizer, scheduler,
                       {"epoch": epoch + 1, "step": step, "history": history, "best": best, "first_loss": guard.first,
                        "start_norm": guard.start_norm, "round": round_index})
    if metric is not None:
        detector.load_state_dict(best.pop("state"), strict=False)
        chosen = next(h for h in history if h["epoch"] == best["epoch"])
    else:
        chosen = history[-1]
    return {"rule": select, "epoch": chosen["epoch"], "step": chosen["step"], "val": chosen["val"],
            "steps_total": step, "epochs_run": len(history), "history": history,
            "resumed_from_epoch": saved["epoch"] if saved is not None else None}


def warm_up(runner: Runner, detector: Detector, train: ResolvedSplit, ctx: StepContext) -> None:
    """``detector.warmup_batches`` forward-only passes before the first step (not steps).

    They read batches in an order of their own (stream 1), so the training data order is the same
    with and without warm-up; the optimizer and scheduler are not stepped.
    """
    wanted = int(detector.warmup_batches or 0)
    if wanted <= 0:
        return
    loader, _ = runner.loader(train, detector, train=True, stream=1)
    ctx.model.train()
    done, epoch = 0, 0
    while done < wanted:
        loader.set_epoch(epoch)
        for batch in runner.bar(loader, "warm-up"):
            batch = runner.ledger.training_batch(train, batch, loader.dataset.describe)
            if batch is None:
                continue
            out = detector.warmup_step(batch, ctx)
            done += 1
            runner.log.append({"event": "warmup", "batch": done, **numbers(out)})
            if done >= wanted:
                break
        epoch += 1


def numbers(out: dict) -> dict[str, float]:
    """A train step's logged values as floats, with one device synchronisation for all of them."""
    keys = list(out)
    if not keys:
        return {}
    tensors = [torch.as_tensor(out[k]).detach().float().reshape(()) for k in keys]
    devices = {t.device for t in tensors}
    values = torch.stack([t.to(tensors[0].device) for t in tensors]).tolist() if len(devices) == 1 else \
        [float(t) for t in tensors]
    return dict(zip(keys, values))


def _snapshot(detector: Detector) -> dict[str, torch.Tensor]:
    """A copy of what training can change, kept in memory for best-epoch selection."""
    return {k: v.clone() for k, v in trained_state(detector).items()}


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: Path, runner: Runner, detector: Detector, optimizer, scheduler, progress: dict) -> None:
    """Write the training state after an epoch (main process; every process's RNG state is kept)."""
    from accelerate.utils import gather_object

    rngs = gather_object([_rng_state()])
    if not runner.is_main:
        return
    best = dict(progress["best"])
    state = {"progress": {**progress, "best": best}, "model": trained_state(detector),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
             "rng": rngs, "log": runner.log,
             "absent": {k: sorted(v) for k, v in runner.ledger.absent.items()},
             "conversions": runner.ledger.conversions}
    hint = RESUME_HINT.format(run_dir=run_dir)
    folder = make_dir(Path(run_dir) / STATE_DIR, hint)
    # Atomic: a kill or a full disk during the write leaves the previous epoch's state.
    write_with(folder / _STATE_FILE, lambda fh: torch.save(state, fh), tensor_bytes(state), hint)


def load_state(run_dir: Path, runner: Runner, detector: Detector, optimizer, scheduler,
               round_index: int = 1) -> dict | None:
    """Restore the state :func:`save_state` wrote, or return None when the run has none yet for this round.

    A state of an earlier round (one a temporal run finished before it was killed) is not this round's.
    """
    path = Path(run_dir) / STATE_DIR / _STATE_FILE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["progress"].get("round", 1) != round_index:
        return None
    detector.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    rank = runner.accelerator.process_index
    if rank >= len(state["rng"]):
        raise ConfigError(f"{run_dir} was trained with {len(state['rng'])} process(es); resume it with the same "
                          f"number of processes.")
    _set_rng_state(state["rng"][rank])
    runner.log[:] = state["log"]
    for name, rows in state["absent"].items():
        runner.ledger.absent.setdefault(name, set()).update(rows)
    runner.ledger.conversions.update(state["conversions"])
    return state["progress"]
