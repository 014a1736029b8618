"""Data loaders for the runner: how many workers, epoch-seeded shuffling, pinned memory.

The training order is a function of (seed, stream, epoch) alone (:class:`EpochSampler`), and the
dataset is told the epoch through the indices it receives, so persistent workers, any worker count
and a resumed run all see exactly the same batches with the same augmentation.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data.gpu_decode import apply_gpu_decode
from bench.errors import BenchError, ConfigError, ImageError
from bench.inputs import check_workers, usable_cores

#: Below this many batches, ``--workers auto`` uses none: starting workers would cost more than it saves.
MIN_BATCHES_FOR_WORKERS = 4
MAX_AUTO_WORKERS = 16


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    return usable_cores()


def resolve_workers(value: int | str, processes_per_machine: int, n_batches: int) -> int:
    """Loader workers per process: ``auto`` leaves each process one core and gives it the rest of its share.

    ``auto`` uses no workers for loaders of fewer than :data:`MIN_BATCHES_FOR_WORKERS` batches.
    """
    if value == "auto":
        if n_batches < MIN_BATCHES_FOR_WORKERS:
            return 0
        share = available_cores() // max(1, processes_per_machine)
        return max(0, min(MAX_AUTO_WORKERS, share - 1))
    try:
        workers = int(value)
    except (TypeError, ValueError):
        workers = -1
    if workers < 0:
        raise ConfigError(f"--workers {value!r} must be 'auto' or a whole number >= 0.")
    return check_workers(workers)


class EpochSampler(Sampler):
    """Yields ``(epoch, position)`` pairs: a permutation seeded by (seed, stream, epoch), or in order.

    ``stream`` separates independent orders over the same data (the warm-up passes use stream 1).
    """

    def __init__(self, n: int, seed: int, shuffle: bool, stream: int = 0):
        self.n, self.seed, self.shuffle, self.stream = n, seed, shuffle, stream
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            seed = zlib.crc32(f"order/{self.seed}/{self.stream}/{self.epoch}".encode())
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).tolist()
        else:
            order = range(self.n)
        return ((self.epoch, i) for i in order)


class EpochView(Dataset):
    """Wraps a dataset that has an ``epoch`` attribute; items are addressed as ``(epoch, position)``."""

    def __init__(self, inner: Dataset):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key: tuple[int, int]):
        epoch, position = key
        self.inner.epoch = epoch  # this process's (or worker's) copy: augmentation is seeded per epoch
        return self.inner[position]


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, stream: int = 0,
                workers: int = 0, pin_memory: bool = False, collate_fn: Callable | None = None) -> DataLoader:
    """A loader over ``dataset`` in epoch-seeded order; training loaders drop the short last batch.

    With several processes accelerate would pad a short training batch with first-batch samples, so
    the gradient would depend on the process count; dropping it keeps runs process-independent.
    """
    sampler = EpochSampler(len(dataset), seed, shuffle, stream)
    extra = {"persistent_workers": True, "prefetch_factor": 4} if workers > 0 else {}
    # A generator of its own: otherwise every pass draws the workers' base seed from the global RNG,
    # so training randomness (dropout) would depend on the worker count.
    generator = torch.Generator().manual_seed(zlib.crc32(f"loader/{seed}/{stream}".encode()))
    return DataLoader(EpochView(dataset), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=shuffle, pin_memory=pin_memory, collate_fn=collate_fn, generator=generator, **extra)


class Batches:
    """A prepared loader whose batches are finished on the device: GPU-decoded rows decoded there."""

    def __init__(self, loader, dataset, transform, device, decode: str):
        self.loader, self.dataset, self.transform, self.device, self.decode = loader, dataset, transform, device, decode

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch``'s order and augmentation. Set on the prepared loader: accelerate re-sets its
        sampler's epoch from the loader's own pass count at every pass, so a sampler set alone
        would be overwritten (and a resumed run would replay epoch 0)."""
        self.loader.set_epoch(epoch)

    def __iter__(self):
        try:
            yield from self._batches()
        except BenchError as err:
            raise _from_worker(err) from None

    def _batches(self):
        for batch in self.loader:
            if self.decode == "gpu":
                batch = apply_gpu_decode(batch, self.device, self.transform, describe=self.dataset.describe,
                                         skip_bad=self.dataset.skip_bad)
                batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                         for k, v in batch.items()}
            yield batch


def _from_worker(err: BenchError) -> BenchError:
    """One sentence for a data error raised in a loader worker (torch wraps it with the worker's traceback)."""
    text = str(err)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    if isinstance(err, ImageError):
        text = (f"{text.rstrip('.')}; pass --skip-bad-images to leave undecodable images out (counted in the "
                f"results), or --check-images to list every bad file before the run.")
    return type(err)(text)
