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
from pathlib import Path

import torch
from torch import Tensor

from bench.data.decode import check_size, decode_bytes
from bench.errors import ImageError

#: JPEG start-of-frame markers libjpeg-turbo and nvjpeg both decode: baseline, extended, progressive.
_FAST_SOF = (0xC0, 0xC1, 0xC2)
_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jpeg_info(data: bytes | bytearray) -> tuple[int, int, int, int] | None:
    """(width, height, components, SOF marker) from a JPEG's frame header, or None if it has none."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF:
            if i + 10 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return width, height, data[i + 9], marker
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def png_info(data: bytes | bytearray) -> tuple[int, int, int, int, bool] | None:
    """(width, height, bit depth, colour type, has tRNS or acTL before IDAT) of a PNG, or None."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    i, extra = 33, False
    while i + 8 <= len(data):
        kind = bytes(data[i + 4:i + 8])
        if kind == b"IDAT":
            break
        extra |= kind in (b"tRNS", b"acTL")
        i += 12 + int.from_bytes(data[i:i + 4], "big")
    return width, height, depth, colour, extra


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
            return "jpeg", "none" if components == 3 else "grayscale"
        return None
    info = png_info(data)
    if info is not None:
        width, height, depth, colour, extra = info
        check_size(width, height, where)
        if depth == 8 and colour in (0, 2) and not extra:
            return "png", "none" if colour == 2 else "grayscale"
    return None


def read_bytes(path: str | Path) -> bytearray:
    """The bytes of ``path`` in a writable buffer (``torch.frombuffer`` needs one to share it without copying)."""
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
            return decode(buf, mode=ImageReadMode.RGB), kind
        except RuntimeError:
            pass  # PIL decides: it decodes what libjpeg/libpng refused, or raises a clear ImageError
    image, kind = decode_bytes(bytes(data), where)
    return pil_to_tensor(image), kind


def decode_tensor_file(path: str | Path) -> tuple[Tensor, str]:
    """Decode the file at ``path`` to a uint8 ``[3, H, W]`` tensor and its conversion kind."""
    return decode_tensor(read_bytes(path), str(path))
