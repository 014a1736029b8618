"""Accelerate-driven fit and predict. No detector-specific branches: everything goes through hooks.

One process or many (``accelerate launch -m bench run ...``): batches are split across processes
(``split_batches=True``) so the global batch, the data order and hence the results do not depend
on the number of processes; scores are gathered with ``gather_for_metrics``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bench.checkpoint import trained_state
from bench.data.dataset import RawDataset
from bench.data.splits import ResolvedSplit
from bench.detector import Detector, FeatureSet, StepContext
from bench.errors import ConfigError
from bench.metrics import HIGHER_IS_BETTER, compute_metrics


@dataclass
class RunnerOptions:
    """Hardware and debugging options (never model or data settings)."""

    batch_size: int = 64
    workers: int = 0
    precision: str = "no"
    cpu: bool = False
    max_steps: int | None = None
    #: Rows of each split to leave out (undecodable images the user chose to skip).
    skip: dict[str, set[int]] = field(default_factory=dict)


class Runner:
    """Fits a detector under a budget with validation-based selection, then predicts scores."""

    def __init__(self, opts: RunnerOptions, seed: int):
        self.opts = opts
        use_cpu = opts.cpu or not torch.cuda.is_available()
        # cpu=True matters for multi-process CPU runs: without it each process silently runs alone.
        self.accelerator = Accelerator(cpu=use_cpu, mixed_precision=opts.precision,
                                       dataloader_config=DataLoaderConfiguration(split_batches=True))
        if opts.batch_size % self.accelerator.num_processes:
            raise ConfigError(f"--batch-size {opts.batch_size} must be divisible by the number of processes "
                              f"({self.accelerator.num_processes}); the global batch is split across them.")
        self.seed = seed
        set_seed(seed)
        self.log: list[dict[str, Any]] = []

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.accelerator.is_main_process

    def _loader(self, split: ResolvedSplit, transform, shuffle: bool, stream: int = 0) -> DataLoader:
        """A loader over ``split``; ``stream`` > 0 gives an independent shuffling order (warm-up)."""
        dataset = RawDataset(split, transform, self.opts.skip.get(split.name), seed=self.seed)
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * stream)
        # Training drops the short last batch: with several processes accelerate would pad it with
        # samples of the first batch, so the gradient would depend on the process count.
        return DataLoader(dataset, batch_size=self.opts.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=self.opts.workers, drop_last=shuffle)

    def _bar(self, iterable, desc: str, total: int | None = None):
        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                    disable=not self.accelerator.is_local_main_process)

    # -- prediction -------------------------------------------------------------------------------
    def _scores(self, model, loader: DataLoader, n: int, desc: str, fn=None) -> torch.Tensor:
        """Run ``fn`` (default: the model) over a prepared loader; gather outputs in table order."""
        fn = fn or model
        out: torch.Tensor | None = None
        model.eval()
        with torch.inference_mode():
            for batch in self._bar(loader, desc):
                values = fn(batch["image"]).float()
                values, index = self.accelerator.gather_for_metrics((values, batch["index"]))
                if out is None:
                    out = torch.full((n, *values.shape[1:]), float("nan"))
                out[index.cpu()] = values.cpu()
        return out if out is not None else torch.full((n,), float("nan"))

    def predict(self, detector: Detector, split: ResolvedSplit) -> np.ndarray:
        """Logits for every row of ``split`` (NaN for skipped rows); only scores are kept in memory."""
        model = self.accelerator.prepare_model(detector, evaluation_mode=True)
        loader = self.accelerator.prepare_data_loader(self._loader(split, detector.transform(train=False), False))
        return self._scores(model, loader, len(split.table), f"predict {split.name}").numpy()

    def _val_metrics(self, model, loader, split: ResolvedSplit, names: list[str]) -> dict[str, float]:
        scores = self._scores(model, loader, len(split.table), "validate").numpy()
        keep = ~np.isnan(scores)
        return compute_metrics(split.table["label"].to_numpy()[keep], scores[keep], names, where="val")

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, detector: Detector, train: ResolvedSplit, val: ResolvedSplit, select: str,
            epochs_budget: int | None, steps_budget: int | None) -> dict[str, Any]:
        """Train (or fit on features) and select on ``val``; returns the selection record."""
        if detector.fits_features:
            return self._fit_features(detector, train, val, select)
        return self._fit_gradient(detector, train, val, select, epochs_budget, steps_budget)

    def _fit_features(self, detector: Detector, train: ResolvedSplit, val: ResolvedSplit, select: str) -> dict:
        sets = {}
        for split in (train, val):
            model = self.accelerator.prepare_model(detector, evaluation_mode=True)
            loader = self.accelerator.prepare_data_loader(self._loader(split, detector.transform(train=False), False))
            feats = self._scores(model, loader, len(split.table), f"features {split.name}", fn=detector.features)
            keep = ~torch.isnan(feats).any(dim=1)
            labels = torch.tensor(split.table["label"].to_numpy())
            sets[split.name] = FeatureSet(feats[keep], labels[keep])
        start = time.perf_counter()
        info = detector.fit_features(sets["train"], sets["val"], select)
        self.log.append({"event": "fit_features", "seconds": round(time.perf_counter() - start, 3), **info})
        return {"rule": select, **info}

    def _warm_up(self, detector: Detector, train: ResolvedSplit, ctx: StepContext) -> None:
        """``detector.warmup_batches`` forward-only passes before the first step (not steps).

        They read batches from a loader with its own shuffling order, so the training data order
        is the same with and without warm-up; the optimizer and scheduler are not stepped.
        """
        wanted = int(detector.warmup_batches or 0)
        if wanted <= 0:
            return
        loader = self.accelerator.prepare_data_loader(
            self._loader(train, detector.transform(train=True), shuffle=True, stream=1))
        ctx.model.train()
        done = 0
        while done < wanted:
            for batch in self._bar(loader, "warm-up"):
                out = detector.warmup_step(batch, ctx)
                done += 1
                self.log.append({"event": "warmup", "batch": done, **{k: float(v) for k, v in out.items()}})
                if done >= wanted:
                    break

    def _fit_gradient(self, detector, train, val, select, epochs_budget, steps_budget) -> dict:
        acc = self.accelerator
        train_loader = self._loader(train, detector.transform(train=True), True)
        val_loader = self._loader(val, detector.transform(train=False), False)
        wanted = getattr(detector.cfg, "epochs", 1)
        epochs = min(wanted, epochs_budget or wanted)
        per_epoch = len(train_loader.dataset) // self.opts.batch_size
        if per_epoch == 0:
            raise ConfigError(f"The train split has {len(train_loader.dataset)} images, fewer than --batch-size "
                              f"{self.opts.batch_size}; lower --batch-size.")
        caps = [c for c in (steps_budget, self.opts.max_steps) if c]
        total = min([epochs * per_epoch, *caps])
        optimizer, scheduler = detector.configure_optimizer(total)
        model, optimizer, train_loader, val_loader = acc.prepare(detector, optimizer, train_loader, val_loader)
        if scheduler is not None:
            scheduler = acc.prepare(scheduler)
        names = sorted({"auc", "ap", "acc", "eer"} | ({select.split(":")[1]} if select != "last" else set()))
        metric = select.split(":")[1] if select != "last" else None
        best: dict[str, Any] = {"value": None}
        history, step = [], 0
        ctx = StepContext(model=model, optimizer=optimizer, accelerator=acc, scheduler=scheduler)
        self._warm_up(detector, train, ctx)
        for epoch in range(epochs):
            model.train()
            train_loader.dataset.epoch = epoch
            for batch in self._bar(train_loader, f"epoch {epoch + 1}/{epochs}"):
                ctx.step = step
                out = detector.train_step(batch, ctx)
                if scheduler is not None:
                    scheduler.step()
                step += 1
                self.log.append({"epoch": epoch, "step": step, **{k: float(v) for k, v in out.items()}})
                if step >= total:
                    break
            val_metrics = self._val_metrics(model, val_loader, val, names)
            history.append({"epoch": epoch, "step": step, "val": val_metrics})
            self.log.append({"event": "validate", "epoch": epoch, "step": step, "val": val_metrics})
            if metric is not None:
                value = val_metrics[metric]
                better = best["value"] is None or (
                    value > best["value"] if HIGHER_IS_BETTER[metric] else value < best["value"])
                if better:
                    best = {"value": value, "epoch": epoch, "step": step, "state": _snapshot(detector)}
            if step >= total:
                break
        if metric is not None:
            detector.load_state_dict(best.pop("state"), strict=False)
            chosen = next(h for h in history if h["epoch"] == best["epoch"])
        else:
            chosen = history[-1]
        return {"rule": select, "epoch": chosen["epoch"], "step": chosen["step"], "val": chosen["val"],
                "steps_total": step, "epochs_run": len(history), "history": history}



def _snapshot(detector: Detector) -> dict[str, torch.Tensor]:
    """A copy of what training can change, kept in memory for best-epoch selection."""
    return {k: v.clone() for k, v in trained_state(detector).items()}
