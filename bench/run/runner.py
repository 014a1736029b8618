"""Accelerate-driven fit and predict. No detector-specific branches: everything goes through hooks.

One process or many (``accelerate launch -m bench run ...``): batches are split across processes
(``split_batches=True``) so the global batch, the data order and hence the results do not depend
on the number of processes; scores are gathered with ``gather_for_metrics``. Every score, feature
and loss a detector produces must be finite (:mod:`bench.run.checks`); only images skipped with
``--skip-bad-images`` may lack a score.
"""

from __future__ import annotations

import copy
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, set_seed
from tqdm.auto import tqdm

from bench.cache.features import FeatureStore
from bench.data.dataset import RawDataset, collate_samples
from bench.data.gpu_decode import collate_encoded
from bench.data.splits import ResolvedSplit
from bench.errors import ConfigError
from bench.inputs import check_threads
from bench.metrics import compute_metrics
from bench.plugin.detector import Detector
from bench.plugin.types import FeatureSet
from bench.run import training
from bench.run.checks import SCORE_BOUND, require_finite
from bench.run.ledger import Ledger
from bench.run.loading import Batches, EpochSampler, make_loader, resolve_workers

PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class RunnerOptions:
    """Hardware and debugging options (never model or data settings)."""

    batch_size: int = 64
    #: Loader workers per process: "auto" (cores of this process's share minus one) or a number.
    workers: int | str = "auto"
    #: Mixed precision; None takes the launcher's (``accelerate launch --mixed_precision``) or "no".
    precision: str | None = None
    cpu: bool = False
    max_steps: int | None = None
    #: torch intra-op threads (None: torch's default).
    threads: int | None = None
    #: Leave out images that fail to decode (recorded) instead of stopping the run.
    skip_bad_images: bool = False
    #: Reuse frozen features across runs (``$BENCH_CACHE``); False is ``--no-cache``.
    cache: bool = True
    #: "cpu" (loader workers decode) or "gpu" (JPEG files decoded on the GPU with nvjpeg).
    decode: str = "cpu"
    #: Rows of each split to leave out (bad images found before the run with --check-images).
    skip: dict[str, set[int]] = field(default_factory=dict)


def resolve_precision(requested: str | None, cpu: bool) -> str:
    """The precision a run really uses, or a ConfigError when it would be recorded but not applied."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if requested and launcher and launcher != requested:
        raise ConfigError(f"--precision {requested} conflicts with the launcher's --mixed_precision {launcher}; "
                          f"give one of them, or the same value to both.")
    precision = requested or launcher or "no"
    if precision not in PRECISIONS:
        raise ConfigError(f"Precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and cpu:
        raise ConfigError("--precision fp16 does not run on the CPU (autocast there supports bf16 only), so "
                          "the run would be fp32 while recorded as fp16; use --precision bf16 or no.")
    return precision


class Runner:
    """Fits a detector under a budget with validation-based selection, then predicts scores."""

    def __init__(self, opts: RunnerOptions, seed: int, detector_name: str = "detector"):
        self.opts = opts
        if check_threads(opts.threads) is not None:  # libgomp crashes on absurd counts: bounded by the cores
            torch.set_num_threads(opts.threads)
        use_cpu = opts.cpu or not torch.cuda.is_available()
        self.precision = resolve_precision(opts.precision, use_cpu)
        # Accelerate keeps one state per process; a second run in the same process (the Python API, a
        # sweep) may use another precision, so the state is renewed (the distributed setup is kept).
        AcceleratorState._reset_state(reset_partial_state=False)
        # cpu=True matters for multi-process CPU runs: without it each process silently runs alone.
        self.accelerator = Accelerator(cpu=use_cpu, mixed_precision=self.precision,
                                       dataloader_config=DataLoaderConfiguration(split_batches=True,
                                                                                 non_blocking=not use_cpu))
        if opts.decode not in ("cpu", "gpu"):
            raise ConfigError(f"--decode {opts.decode!r} must be cpu or gpu.")
        # BENCH_TEST_CPU_DECODE=1 lets tests run the --decode gpu flow on the CPU (torchvision decodes there too).
        cpu_test = os.environ.get("BENCH_TEST_CPU_DECODE") == "1"
        if opts.decode == "gpu" and self.accelerator.device.type != "cuda" and not cpu_test:
            raise ConfigError("--decode gpu needs a CUDA device (nvjpeg); this run is on the CPU, use --decode cpu.")
        if opts.batch_size % self.accelerator.num_processes:
            raise ConfigError(f"--batch-size {opts.batch_size} must be divisible by the number of processes "
                              f"({self.accelerator.num_processes}); the global batch is split across them.")
        self.seed, self.name = seed, detector_name
        self.started = time.perf_counter()
        set_seed(seed)
        self.log: list[dict[str, Any]] = []
        #: Rows without a score and decode conversions per split (see bench.run.ledger).
        self.ledger = Ledger(self.accelerator, opts.skip_bad_images, opts.skip)
        resolve_workers(opts.workers, 1, 0)  # a malformed --workers fails now, before any data is read
        self.workers_used: dict[str, int] = {}
        #: Frozen features shared across runs (None with --no-cache); see bench.cache.features.
        self.cache = FeatureStore(self.precision) if opts.cache else None

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.accelerator.is_main_process

    # -- loaders and bookkeeping ------------------------------------------------------------------
    def loader(self, split: ResolvedSplit, detector: Detector, train: bool, shuffle: bool | None = None,
               stream: int = 0, skip: set[int] | None = None) -> tuple[Batches, EpochSampler]:
        """A prepared loader over ``split`` with ``detector``'s transform (see :mod:`bench.run.loading`).

        Training loaders use the detector's sample builder, if any, and leave the split's fakes
        out for detectors that make their own (``uses_train_fakes = False``). ``skip``: rows to
        leave out (default: the pre-run check's bad files).
        """
        transform = detector.transform(train=train)
        skip = set(self.opts.skip.get(split.name, ())) if skip is None else set(skip)
        builder = detector.train_sample_builder() if train else None
        if train and not detector.uses_train_fakes:
            skip |= set(np.flatnonzero(split.table["label"].to_numpy() == 1).tolist())
        decode = "cpu" if builder is not None else self.opts.decode
        # Decode failures come back as valid=False and are settled by the ledger on every process.
        dataset = RawDataset(split, transform, skip, seed=self.seed, tensor_input=detector.tensor_input,
                             skip_bad=True, sample_builder=builder, decode=decode)
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", self.accelerator.num_processes))
        workers = resolve_workers(self.opts.workers, per_machine, len(dataset) // self.opts.batch_size)
        self.workers_used[split.name] = workers
        collate = collate_samples if builder is not None else collate_encoded if decode == "gpu" else None
        loader = make_loader(dataset, self.opts.batch_size, shuffle=train if shuffle is None else shuffle,
                             seed=self.seed, stream=stream, workers=workers, collate_fn=collate,
                             pin_memory=self.accelerator.device.type == "cuda")
        prepared = self.accelerator.prepare_data_loader(loader, device_placement=decode != "gpu")
        return Batches(prepared, dataset, transform, self.accelerator.device, decode), loader.sampler

    def bar(self, iterable, desc: str, total: int | None = None):
        """A progress bar over ``iterable`` on the local main process only."""
        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                    disable=not self.accelerator.is_local_main_process)

    @contextmanager
    def cache_uncounted(self):
        """Feature-cache reads inside do not count in the run's cache report.

        For a split this run already read once (the validation threshold re-reads the val features
        the fit computed): the report counts each image of a split once, where its features came from.
        """
        saved = copy.deepcopy(self.cache.cache.stats) if self.cache is not None else None
        try:
            yield
        finally:
            if saved is not None:
                self.cache.cache.stats = saved

    @property
    def absent(self) -> dict[str, set[int]]:
        """Rows of each split without a score (this process's view; merged at the end of the run)."""
        return self.ledger.absent

    # -- prediction -------------------------------------------------------------------------------
    def _scores(self, model, loader: Batches, split: ResolvedSplit, desc: str, fn=None,
                width: int | None = None) -> torch.Tensor:
        """Run ``fn`` (default: the model) over a prepared loader; gather outputs in table order.

        ``fn`` runs under the run's precision (autocast) like the prepared model; rows the loader
        does not yield stay NaN ([N] scores, or [N, width] features).
        """
        fn = fn or model
        n = len(split.table)
        out = torch.full((n,) if width is None else (n, width), float("nan"))
        model.eval()
        with torch.inference_mode():
            for batch in self.bar(loader, desc):
                with self.accelerator.autocast():
                    values = fn(batch["image"]).float()
                valid = batch.get("valid", torch.ones(len(values), dtype=torch.bool, device=values.device))
                conv = batch.get("conversion", torch.zeros(len(values), dtype=torch.long, device=values.device))
                values, index, valid, conv = self.accelerator.gather_for_metrics(
                    (values, batch["index"], valid, conv))
                self.ledger.note(split, index, valid, conv, loader.dataset.describe)
                if out.ndim != values.ndim:
                    out = torch.full((n, *values.shape[1:]), float("nan"))
                out[index.cpu()] = torch.where(valid.cpu().view(-1, *[1] * (values.ndim - 1)), values.cpu(),
                                               torch.tensor(float("nan")))
        return out

    def _checked(self, values: torch.Tensor, split: ResolvedSplit, what: str) -> np.ndarray:
        array = values.numpy()
        require_finite(array, split.table["id"].tolist(), self.absent.get(split.name, set()), self.name,
                       f"{what} on {split.name!r}", bound=SCORE_BOUND if "scores" in what else None)
        return array

    def predict(self, detector: Detector, split: ResolvedSplit) -> np.ndarray:
        """Logits for every row of ``split`` (NaN only for skipped rows); only scores are kept in memory.

        Detectors fitted on cached frozen features are scored from those features.
        """
        if self.cache is not None and detector.fits_features and self.cache.serves(detector):
            feats = self._features(detector, split)
            device = next(detector.parameters()).device  # never moved when every feature came from the cache
            with torch.inference_mode(), self.accelerator.autocast():  # the precision forward() runs in
                scores = detector.classify_features(feats.to(device)).float().cpu()
            return self._checked(scores, split, "scores")
        model = self.accelerator.prepare_model(detector, evaluation_mode=True)
        loader, _ = self.loader(split, detector, train=False)
        return self._checked(self._scores(model, loader, split, f"predict {split.name}"), split, "scores")

    def val_metrics(self, model, loader, split: ResolvedSplit, names: list[str]) -> dict[str, float]:
        """Validation metrics of the current weights (selection only; never a test set)."""
        scores = self._checked(self._scores(model, loader, split, "validate"), split, "validation scores")
        keep = np.isfinite(scores)
        return compute_metrics(split.table["label"].to_numpy()[keep], scores[keep], names, where="val")

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, detector: Detector, train: ResolvedSplit, val: ResolvedSplit, select: str,
            epochs_budget: int | None, steps_budget: int | None, run_dir=None, round_index: int = 1) -> dict[str, Any]:
        """Train (or fit on features) and select on ``val``; returns the selection record.

        ``run_dir``: where gradient training saves its state after every epoch (and resumes from);
        ``round_index``: which round of a temporal run the state belongs to.
        """
        if detector.fits_features:
            return self._fit_features(detector, train, val, select)
        return training.fit_gradient(self, detector, train, val, select, epochs_budget, steps_budget, run_dir,
                                     round_index)

    def features(self, detector: Detector, split: ResolvedSplit) -> FeatureSet:
        """Frozen features of every usable row of ``split`` (rows skipped on purpose are left out)."""
        feats = self._features(detector, split)
        keep = torch.isfinite(feats).all(dim=1)
        labels = torch.tensor(split.table["label"].to_numpy())
        return FeatureSet(feats[keep], labels[keep])

    def _features(self, detector: Detector, split: ResolvedSplit) -> torch.Tensor:
        """[N, D] features in table order (NaN rows for skipped images), from the cache where it has them."""
        transform = detector.transform(train=False)
        skipped = set(self.absent.get(split.name, ()))
        found, wanted = (self.cache.lookup(detector, split, transform, self.accelerator, self.opts.decode)
                         if self.cache is not None else (None, None))
        hits = set() if found is None else {i for i, hit in enumerate(found.found.tolist()) if hit}
        if found is not None:
            self.ledger.conversions.setdefault(split.name, {}).update(wanted.codes)
            if hits | skipped >= set(range(len(split.table))):  # nothing left to compute
                feats = found.features.clone()
                feats[sorted(skipped - hits)] = float("nan")
                return self._checked_tensor(feats, split)
        model = self.accelerator.prepare_model(detector, evaluation_mode=True)
        loader, _ = self.loader(split, detector, train=False, skip=skipped | hits)
        width = found.features.shape[1] if found is not None and found.features is not None else None
        feats = self._scores(model, loader, split, f"features {split.name}", fn=detector.features, width=width)
        if found is not None:
            computed = torch.ones(len(feats), dtype=torch.bool)
            computed[sorted(hits)] = False
            if found.features is not None:
                feats = torch.where(found.found[:, None], found.features, feats)
            self.cache.store(wanted, feats, computed, self.ledger.conversions.get(split.name, {}), self.is_main)
        return self._checked_tensor(feats, split)

    def _checked_tensor(self, feats: torch.Tensor, split: ResolvedSplit) -> torch.Tensor:
        self._checked(feats, split, "features")
        return feats

    def _fit_features(self, detector: Detector, train: ResolvedSplit, val: ResolvedSplit, select: str) -> dict:
        train_set, val_set = self.features(detector, train), self.features(detector, val)
        start = time.perf_counter()
        info = detector.fit_features(train_set, val_set, select)
        self.log.append({"event": "fit_features", "seconds": round(time.perf_counter() - start, 3), **info})
        return {"rule": select, **info}
