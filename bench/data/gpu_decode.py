"""Opt-in GPU JPEG decoding (``--decode gpu``): nvjpeg through torchvision, then the transform on the GPU.

The flow, for the runner:

1. ``RawDataset(..., decode="gpu")`` returns JPEG rows *encoded*: ``encoded`` holds the file's
   bytes (a uint8 1-D tensor) and ``image`` zeros; every other row (PNG, WebP, CMYK JPEG, rows
   with perturbations, sources without files) is decoded and transformed on the CPU as usual,
   with an empty ``encoded``. ``seed`` is the row's augmentation seed.
2. ``DataLoader(..., collate_fn=collate_encoded)`` keeps ``encoded`` as a list (lengths differ).
3. :func:`apply_gpu_decode` decodes the encoded rows on the device in one batched nvjpeg call,
   applies the transform there (seeded per row, so augmentation equals the CPU path's) and
   writes them into ``image``.

Only JPEG files whose header the CPU path would also decode with libjpeg as is (baseline or
progressive, 1 or 3 components, ending with EOI; :func:`bench.data.tensor_decode.fast_kind`) go to
the GPU, so conversion kinds are the same on both paths. nvjpeg's IDCT and chroma upsampling differ
from libjpeg-turbo's: decoded pixels differ by less than :data:`GPU_TOLERANCE` grey levels on
average (the bound torchvision's own tests use); ``tests/test_gpu_decode.py`` checks it where a
GPU is present.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import default_collate

from bench.data.dataset import seeded
from bench.data.tensor_decode import quiet_torchvision_io
from bench.errors import ImageError

#: Mean absolute difference, in grey levels, allowed between nvjpeg's and libjpeg-turbo's pixels.
GPU_TOLERANCE = 2.0


def collate_encoded(batch: list[dict[str, Tensor]]) -> dict[str, Tensor | list[Tensor]]:
    """``collate_fn`` for ``decode="gpu"`` datasets: ``encoded`` stays a list, other keys are stacked."""
    out = default_collate([{k: v for k, v in sample.items() if k != "encoded"} for sample in batch])
    out["encoded"] = [sample["encoded"] for sample in batch]
    return out


def decode_batch_gpu(encoded: list[Tensor], device: torch.device | str, transform: Callable,
                     seeds: list[int] | None = None) -> Tensor:
    """Decode JPEG bytes on ``device`` (batched nvjpeg on CUDA) and apply ``transform`` to each image there.

    ``seeds`` (one per image) seed each image's transform as :class:`RawDataset` does, so random
    augmentation matches the CPU path. Raises :class:`ImageError` when a file cannot be decoded
    (use :func:`apply_gpu_decode` to name or skip it).
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    if not encoded:
        raise ValueError("decode_batch_gpu needs at least one encoded image")
    try:
        with quiet_torchvision_io():
            images = decode_jpeg([e.cpu() for e in encoded], mode=ImageReadMode.RGB, device=device)
    except RuntimeError as err:
        raise ImageError(f"a JPEG of this batch cannot be decoded on {device} ({err})") from err
    out = []
    for k, image in enumerate(images):
        if seeds is None:
            out.append(transform(image))
        else:
            with seeded(int(seeds[k]), numpy=False):
                out.append(transform(image))
    return torch.stack(out)


def apply_gpu_decode(batch: dict, device: torch.device | str, transform: Callable,
                     describe: Callable[[int], str] | None = None, skip_bad: bool = False) -> dict:
    """Return ``batch`` with its encoded rows decoded and transformed on ``device``; ``image`` moves there.

    A file that fails to decode stops with :class:`ImageError` naming it (``describe(row)`` turns
    the table row in ``index`` into a name, e.g. ``RawDataset.describe``), or with ``skip_bad``
    gets ``valid=False`` and stays zero, as CPU decoding does.
    """
    images = batch["image"].to(device)
    valid = batch["valid"].clone()
    rows = [k for k, data in enumerate(batch["encoded"]) if data.numel()]
    seeds = batch["seed"].tolist()
    if rows:
        try:
            decoded = decode_batch_gpu([batch["encoded"][k] for k in rows], device, transform,
                                       [seeds[k] for k in rows])
            images[rows] = decoded.to(images.dtype)
        except ImageError:
            for k in rows:  # one by one, to name (or skip) the file that failed
                try:
                    images[k] = decode_batch_gpu([batch["encoded"][k]], device, transform, [seeds[k]])[0]
                except ImageError as err:
                    row = int(batch["index"][k])
                    if not skip_bad:
                        name = describe(row) if describe is not None else f"row {row}"
                        raise ImageError(f"{name} cannot be decoded on {device} ({err})") from err
                    valid[k] = False
                    images[k] = 0
    return {**batch, "image": images, "valid": valid}
