"""The single ``torch.utils.data.Dataset``: rows of a resolved split, decoded and transformed.

Sample contract (what the runner relies on): ``__getitem__`` returns ``{"image": float Tensor,
"label": int64, "index": int64 (row in split.table), "valid": bool, "conversion": int64 (index
into :data:`bench.data.decode.CONVERSIONS`)}``. With a ``sample_builder`` every value gains a
leading sample dimension ``k`` (``image [k, 3, H, W]``, ``index`` the row repeated) and
:func:`collate_samples` concatenates them. With ``decode="gpu"`` two keys are added, ``encoded``
and ``seed`` (see :mod:`bench.data.gpu_decode`).

Random augmentation (and the sample builder) is seeded per (seed, epoch, row), so an image gets
the same augmentation whatever the number of processes or workers: a 2-process run reproduces a
1-process run. Seeded are torch's CPU generator and Python's ``random`` (and NumPy's global RNG when
a sample builder is set).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from bench.data.decode import conversion_index
from bench.data.perturb import apply_perturb
from bench.data.splits import ResolvedSplit
from bench.errors import ConfigError, ImageError

#: ``(image, label, extras) -> [(image, label), ...]``: makes the samples of one row (e.g. SBI's
#: self-blended fakes from a real); a row mapped to ``[]`` contributes nothing.
SampleBuilder = Callable[[Image.Image, int, dict[str, Any]], list[tuple[Image.Image, int]]]
DECODES = ("cpu", "gpu")
# The placeholder a failed row's zero image is shaped from: the transform's output on it.
_PLACEHOLDER_SIDE = 512


def sample_seed(seed: int, epoch: int, row: int) -> int:
    """The seed of one row's augmentation in one epoch (independent of processes and workers)."""
    return zlib.crc32(f"{seed}/{epoch}/{row}".encode())


@contextmanager
def seeded(seed: int, numpy: bool = True) -> Iterator[None]:
    """Run the body with torch's CPU and Python's global RNGs (and NumPy's, with ``numpy``) seeded.

    The previous states are restored after. Only torch's CPU generator is touched
    (``torch.manual_seed`` would also reseed every GPU, lazily and slowly, from inside a loader running
    in the main process). NumPy's state is large to save, so it is seeded only where a sample builder
    may use it.
    """
    generator = torch.random.default_generator
    torch_state, py_state = generator.get_state(), random.getstate()
    np_state = np.random.get_state() if numpy else None
    generator.manual_seed(seed)
    random.seed(seed)
    if numpy:
        np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        generator.set_state(torch_state)
        random.setstate(py_state)
        if numpy:
            np.random.set_state(np_state)


class RawDataset(Dataset):
    """Rows of ``split`` decoded, perturbed (protocol ``ops``), and passed through ``transform``.

    ``skip``: rows left out entirely (the pre-run check's bad files). ``tensor_input``: the
    transform receives a uint8 ``[3, H, W]`` tensor (decoded by torchvision where it gives the same
    pixels; rows with perturbations are decoded and perturbed with PIL first) instead of a PIL
    image. ``skip_bad``: an image that fails to decode yields a zero image shaped like the
    transform's output with ``valid=False`` (the runner masks it out without changing the batch),
    instead of raising :class:`ImageError` naming the file. ``sample_builder``: see
    :data:`SampleBuilder`; it receives the PIL image and is called inside the row's seeded RNG
    context. ``decode="gpu"``: JPEG files are returned encoded, for :mod:`bench.data.gpu_decode`.
    """

    def __init__(self, split: ResolvedSplit, transform: Callable, skip: set[int] | None = None,
                 seed: int = 0, *, tensor_input: bool = False, skip_bad: bool = False,
                 sample_builder: SampleBuilder | None = None, decode: str = "cpu"):
        if decode not in DECODES:
            raise ConfigError(f"decode must be one of {', '.join(DECODES)}, not {decode!r}.")
        if decode == "gpu" and sample_builder is not None:
            raise ConfigError("GPU decoding cannot feed a sample builder (it needs a PIL image); "
                              "use decode='cpu'.")
        self.split = split
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.tensor_input = tensor_input or decode == "gpu"
        self.skip_bad = skip_bad
        self.sample_builder = sample_builder
        self.decode = decode
        self.rows = [i for i in range(len(split.table)) if not skip or i not in skip]
        self._ids = split.table["id"].tolist()
        self._sources = split.table["source"].tolist()
        self._labels = split.table["label"].tolist()
        self._ops = split.table["ops"].tolist() if "ops" in split.table else [()] * len(split.table)
        self._blank: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self, row: int) -> str:
        """The file (or source id) behind table row ``row``, for messages."""
        source = self.split.sources[self._sources[row]]
        path = source.file_path(self._ids[row])
        return str(path) if path is not None else f"{source.name}:{self._ids[row]}"

    # -- decoding ----------------------------------------------------------------------------------
    def _image(self, row: int) -> tuple[Any, str]:
        """The decoded (and perturbed) image of ``row`` as the transform wants it, and its conversion."""
        source = self.split.sources[self._sources[row]]
        ops = self._ops[row]
        if self.tensor_input and not ops and self.sample_builder is None:
            return source.load_tensor(self._ids[row])
        image, kind = source.load_with_info(self._ids[row])
        for op in ops:
            image = apply_perturb(image, op, key=f"{self._sources[row]}:{self._ids[row]}")
        return image, kind

    def _as_input(self, image: Any) -> Any:
        if self.tensor_input and isinstance(image, Image.Image):
            from torchvision.transforms.functional import pil_to_tensor

            return pil_to_tensor(image.convert("RGB"))
        return image

    def _encoded(self, row: int) -> tuple[bool, torch.Tensor, str] | None:
        """For ``decode="gpu"``: ``(True, bytes, kind)`` for a JPEG the GPU can decode, ``(False, image,
        kind)`` for another file (decoded here from the bytes already read), None without a file."""
        from bench.data.tensor_decode import decode_tensor, fast_kind, read_bytes

        source = self.split.sources[self._sources[row]]
        path = source.file_path(self._ids[row])
        if path is None or self._ops[row]:
            return None
        data = read_bytes(path)
        fast = fast_kind(data, str(path))
        if fast is not None and fast[0] == "jpeg":
            return True, torch.frombuffer(data, dtype=torch.uint8), fast[1]
        return False, *decode_tensor(data, str(path))

    def blank(self) -> torch.Tensor:
        """A zero tensor shaped like the transform's output (computed once, on a grey placeholder)."""
        if self._blank is None:
            placeholder = Image.new("RGB", (_PLACEHOLDER_SIDE, _PLACEHOLDER_SIDE), (128, 128, 128))
            with seeded(0, numpy=False):
                out = self.transform(self._as_input(placeholder))
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the transform returned {type(out).__name__}, not a tensor")
            self._blank = torch.zeros(out.shape, dtype=out.dtype)
        return self._blank

    # -- samples -----------------------------------------------------------------------------------
    def _sample(self, row: int, image: torch.Tensor, label: int, valid: bool,
                kind: int) -> dict[str, torch.Tensor]:
        return {"image": image, "label": torch.tensor(label, dtype=torch.int64),
                "index": torch.tensor(row, dtype=torch.int64), "valid": torch.tensor(valid),
                "conversion": torch.tensor(kind, dtype=torch.int64)}

    def _stacked(self, row: int, images: list[torch.Tensor], labels: list[int], valid: bool,
                 kind: int) -> dict[str, torch.Tensor]:
        k = len(images)
        stacked = torch.stack(images) if images else self.blank().unsqueeze(0)[:0]
        return {"image": stacked, "label": torch.tensor(labels, dtype=torch.int64),
                "index": torch.full((k,), row, dtype=torch.int64), "valid": torch.full((k,), valid),
                "conversion": torch.full((k,), kind, dtype=torch.int64)}

    def _invalid(self, row: int) -> dict[str, torch.Tensor]:
        label = self._labels[row]
        if self.sample_builder is not None:
            return self._stacked(row, [self.blank()], [label], False, 0)
        sample = self._sample(row, self.blank(), label, False, 0)
        if self.decode == "gpu":
            sample.update(encoded=torch.empty(0, dtype=torch.uint8),
                          seed=torch.tensor(sample_seed(self.seed, self.epoch, row), dtype=torch.int64))
        return sample

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.rows[i]
        label = self._labels[row]
        seed = sample_seed(self.seed, self.epoch, row)
        try:
            encoded = self._encoded(row) if self.decode == "gpu" else None
            if encoded is not None and encoded[0]:
                sample = self._sample(row, self.blank(), label, True, conversion_index(encoded[2]))
                return {**sample, "encoded": encoded[1], "seed": torch.tensor(seed, dtype=torch.int64)}
            image, kind = encoded[1:] if encoded is not None else self._image(row)
            extras = None
            if self.sample_builder is not None:
                source = self.split.sources[self._sources[row]]
                extras = {"id": self._ids[row], "source": source.name, **source.extras(self._ids[row])}
        except ImageError:
            if not self.skip_bad:
                raise
            return self._invalid(row)
        with seeded(seed, numpy=self.sample_builder is not None):
            if self.sample_builder is None:
                image = self.transform(self._as_input(image))
                sample = self._sample(row, image, label, True, conversion_index(kind))
            else:
                built = self.sample_builder(image, label, extras)
                images = [self.transform(self._as_input(img)) for img, _ in built]
                labels = [int(lab) for _, lab in built]
                return self._stacked(row, images, labels, True, conversion_index(kind))
        if self.decode == "gpu":
            sample.update(encoded=torch.empty(0, dtype=torch.uint8),
                          seed=torch.tensor(seed, dtype=torch.int64))
        return sample


def collate_samples(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``collate_fn`` for datasets with a sample builder: concatenate every key along dim 0."""
    return {key: torch.cat([sample[key] for sample in batch]) for key in batch[0]}
