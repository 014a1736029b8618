"""Decoding straight to uint8 CHW tensors with torchvision, under the rules of :mod:`bench.data.decode`.

torchvision decodes the two common cases itself (``decode_jpeg``/``decode_png``, libjpeg-turbo and
libpng, as PIL uses): baseline or progressive JPEG with 1 or 3 components that ends with its EOI
marker, and 8-bit grey or RGB PNG without transparency or animation. The file's header is parsed
first (a few bytes, no decoding), so the conversion kind is known and the size guard applies
before any pixel is decoded. Everything else (CMYK, 16-bit, palette, alpha, GIF, WebP, TIFF, ...),
and any file torchvision fails on, goes through PIL's decoder and the same rules, so the two paths
give the same pixels (tests check JPEG and PNG) and never disagree on which files are readable.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from bench.data.decode import check_size, decode_bytes, format_mismatch
from bench.data.sniff import jpeg_info, png_info
from bench.errors import ImageError

#: JPEG start-of-frame markers libjpeg-turbo and nvjpeg both decode: baseline, extended, progressive.
_FAST_SOF = (0xC0, 0xC1, 0xC2)


@contextmanager
def quiet_torchvision_io() -> Iterator[None]:
    """Silence torchvision 0.29's deprecation notice for its image codecs (TorchCodec is to replace them).

    The codecs still work; the notice would otherwise be repeated for every image in a test run.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding",
                                category=DeprecationWarning)
        yield


def fast_kind(data: bytes | bytearray, where: str) -> tuple[str, str] | None:
    """``(format, conversion)`` when torchvision can decode ``data`` by the rules, else None.

    ``format`` is ``jpeg`` or ``png``; conversion is ``none`` or ``grayscale``. Applies the size
    guard (raises :class:`ImageError`) from the header.
    """
    info = jpeg_info(data)
    if info is not None:
        width, height, components, sof = info
        check_size(width, height, where)
        # A file not ending in EOI may be truncated: PIL's decoder decides (it raises, libjpeg pads grey).
        if sof in _FAST_SOF and components in (1, 3) and data[-2:] == b"\xff\xd9":
            return "jpeg", _kind(where, "jpeg", "none" if components == 3 else "grayscale")
        return None
    info = png_info(data)
    if info is not None:
        width, height, depth, colour, extra = info
        check_size(width, height, where)
        if depth == 8 and colour in (0, 2) and not extra:
            return "png", _kind(where, "png", "none" if colour == 2 else "grayscale")
    return None


def _kind(where: str, fmt: str, kind: str) -> str:
    """``format_mismatch`` when the file's name promises another format (the rule of :mod:`bench.data.decode`)."""
    return "format_mismatch" if format_mismatch(where, fmt) else kind


def read_bytes(path: str | Path) -> bytearray:
    """The bytes of ``path`` in a writable buffer (``torch.frombuffer`` shares those without copying)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ImageError(f"{path} is a zero-byte file")
            buf = bytearray(size)
            got = f.readinto(buf)
    except FileNotFoundError as err:
        raise ImageError(f"{path} does not exist") from err
    except IsADirectoryError as err:
        raise ImageError(f"{path} is a directory, not an image file") from err
    except OSError as err:
        raise ImageError(f"{path} cannot be read ({err.strerror})") from err
    return buf[:got] if got != size else buf


def decode_tensor(data: bytes | bytearray, where: str) -> tuple[Tensor, str]:
    """Decode encoded bytes to a uint8 ``[3, H, W]`` tensor and its conversion kind (same rules as PIL)."""
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png
    from torchvision.transforms.functional import pil_to_tensor

    if not data:
        raise ImageError(f"{where} is empty (zero bytes)")
    fast = fast_kind(data, where)
    if fast is not None:
        fmt, kind = fast
        buf = torch.frombuffer(data if isinstance(data, bytearray) else bytearray(data), dtype=torch.uint8)
        try:
            decode = decode_jpeg if fmt == "jpeg" else decode_png
            with quiet_torchvision_io():
                return decode(buf, mode=ImageReadMode.RGB), kind
        except RuntimeError:
            pass  # PIL decides: it decodes what libjpeg/libpng refused, or raises a clear ImageError
    image, kind = decode_bytes(bytes(data), where)
    return pil_to_tensor(image), kind


def decode_tensor_file(path: str | Path) -> tuple[Tensor, str]:
    """Decode the file at ``path`` to a uint8 ``[3, H, W]`` tensor and its conversion kind."""
    return decode_tensor(read_bytes(path), str(path))
