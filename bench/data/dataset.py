"""The single ``torch.utils.data.Dataset``: rows of a resolved split, decoded and transformed."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from bench.data.splits import ResolvedSplit
from bench.perturb import apply_perturb


class RawDataset(Dataset):
    """Yields ``{"image": Tensor, "label": int64, "index": int64}``; ``index`` is the row in the table.

    Random augmentation is seeded per (seed, epoch, row), so an image gets the same augmentation
    whatever the number of processes or workers: a 2-process run reproduces a 1-process run.
    """

    def __init__(self, split: ResolvedSplit, transform: Callable, skip: set[int] | None = None, seed: int = 0):
        self.split = split
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.rows = [i for i in range(len(split.table)) if not skip or i not in skip]
        self._ids = split.table["id"].tolist()
        self._sources = split.table["source"].tolist()
        self._labels = split.table["label"].tolist()
        self._ops = split.table["ops"].tolist() if "ops" in split.table else [()] * len(split.table)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.rows[i]
        image = self.split.sources[self._sources[row]].load(self._ids[row])
        for op in self._ops[row]:
            image = apply_perturb(image, op)
        sample_seed = zlib.crc32(f"{self.seed}/{self.epoch}/{row}".encode())
        state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            random.seed(sample_seed)
            tensor = self.transform(image)
        random.setstate(state)
        return {"image": tensor,
                "label": torch.tensor(self._labels[row], dtype=torch.int64),
                "index": torch.tensor(row, dtype=torch.int64)}
