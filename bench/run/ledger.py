"""What happened to each image of a run: decoded with a conversion, skipped, or failed late.

Loaders always decode in skip mode (a failed image comes back with ``valid = False``), so a bad
file never kills one loader worker or one process alone. The ledger then decides, identically on
every process: with ``--skip-bad-images`` the image is left out and counted; without it the run
stops with one sentence naming the file and why it failed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from accelerate.utils import gather_object

from bench.data.splits import ResolvedSplit
from bench.errors import ImageError


class Ledger:
    """Rows left out and decode conversions, per split, across the processes of a run."""

    def __init__(self, accelerator, skip_bad_images: bool, skipped_before: dict[str, set[int]]):
        self.accelerator, self.skip_bad_images = accelerator, skip_bad_images
        #: Rows without a score per split: the pre-run check's bad files, and late decode failures.
        self.absent: dict[str, set[int]] = {k: set(v) for k, v in skipped_before.items()}
        #: Conversion code per decoded row per split (0 = none; bench.data.decode.CONVERSIONS).
        self.conversions: dict[str, dict[int, int]] = {}

    def note(self, split: ResolvedSplit, index: torch.Tensor, valid: torch.Tensor | None,
             conversion: torch.Tensor | None, describe: Callable[[int], str]) -> list[int]:
        """Record rows seen by every process (after a gather); return the failed rows (see module doc)."""
        rows = index.cpu().tolist()
        if conversion is not None:
            self.conversions.setdefault(split.name, {}).update(zip(rows, conversion.cpu().tolist()))
        if valid is None or bool(valid.all()):
            return []
        bad = [r for r, ok in zip(rows, valid.cpu().tolist()) if not ok]
        self._fail_or_skip(split, bad, describe)
        return bad

    def training_batch(self, split: ResolvedSplit, batch: dict, describe: Callable[[int], str]) -> dict | None:
        """A local training batch without its failed images, or None when every process must skip the step.

        Processes hold different slices of a batch, so they agree (one tiny gather per step, only
        with several processes) before anyone stops, skips or trains.
        """
        index, valid = batch["index"], batch.get("valid")
        if "conversion" in batch:
            self.conversions.setdefault(split.name, {}).update(
                zip(index.cpu().tolist(), batch["conversion"].cpu().tolist()))
        ok = valid if valid is not None else torch.ones(len(index), dtype=torch.bool, device=index.device)
        local_bad = [r for r, good in zip(index.cpu().tolist(), ok.cpu().tolist()) if not good]
        if self.accelerator.num_processes > 1:
            counts = torch.tensor([[len(local_bad), int(ok.sum())]], device=self.accelerator.device)
            counts = self.accelerator.gather(counts).cpu()
            any_bad, min_valid = int(counts[:, 0].sum()), int(counts[:, 1].min())
            bad = sorted({r for part in gather_object([local_bad]) for r in part}) if any_bad else []
        else:
            bad, min_valid = local_bad, int(ok.sum())
        if bad:
            self._fail_or_skip(split, bad, describe)
        if min_valid == 0:
            return None
        if not local_bad:
            return batch
        return {k: v[ok] if isinstance(v, torch.Tensor) and len(v) == len(ok) else v for k, v in batch.items()}

    def _fail_or_skip(self, split: ResolvedSplit, bad: list[int], describe: Callable[[int], str]) -> None:
        if self.skip_bad_images:
            self.absent.setdefault(split.name, set()).update(bad)
            return
        raise ImageError(f"{_why(split, bad[0], describe)}{' and ' + str(len(bad) - 1) + ' more' if len(bad) > 1 else ''}"
                         f"; pass --skip-bad-images to leave undecodable images out (counted in the results), or "
                         f"--check-images to list every bad file before the run.")

    def merged(self) -> tuple[dict[str, set[int]], dict[str, dict[int, int]]]:
        """Absent rows and conversions of every process (call on all processes)."""
        absent: dict[str, set[int]] = {}
        conversions: dict[str, dict[int, int]] = {}
        for part_absent, part_conv in gather_object([(self.absent, self.conversions)]):
            for k, v in part_absent.items():
                absent.setdefault(k, set()).update(v)
            for k, v in part_conv.items():
                conversions.setdefault(k, {}).update(v)
        return absent, conversions


def _why(split: ResolvedSplit, row: int, describe: Callable[[int], str]) -> str:
    """The decode error of ``row`` as its source states it (decoded again here), naming the file."""
    table = split.table
    try:
        split.sources[table["source"].iloc[row]].load(table["id"].iloc[row])
    except ImageError as err:
        return str(err).rstrip(".")
    return f"{describe(row)} could not be decoded during the run"
