"""Write small test images: valid ones in every odd PIL mode, and the broken kinds real datasets contain.

Shared by the test modules (``from images import write_image, write_bad, ODD_MODES, BAD_KINDS``).
Everything is deterministic in ``seed`` so tests can compare pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

#: Odd modes a loader must turn into RGB, mapped to the file suffix each is stored with.
ODD_MODES = {
    "L": ".png",
    "LA": ".png",
    "RGBA": ".png",
    "P": ".png",  # palette with a transparent index
    "CMYK": ".jpg",
    "I;16": ".png",  # 16-bit grayscale
    "1": ".png",
}

#: Broken files a loader must reject with ImageError, mapped to the suffix each is stored with.
BAD_KINDS = {
    "zero_byte": ".png",
    "truncated_png": ".png",
    "truncated_jpeg": ".jpg",
    "random_bytes": ".png",
}


def rgb_array(size: tuple[int, int] = (16, 16), seed: int = 0, color: tuple[int, int, int] | None = None):
    """Return an HxWx3 uint8 array: random noise, or a flat ``color`` when given."""
    w, h = size
    if color is not None:
        return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_image(mode: str = "RGB", size: tuple[int, int] = (16, 16), seed: int = 0, color=None) -> Image.Image:
    """Return an in-memory PIL image of ``mode`` (any key of :data:`ODD_MODES`, or ``RGB``)."""
    rgb = Image.fromarray(rgb_array(size, seed, color))
    if mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(gray)  # uint16 arrays become mode I;16
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return rgb.convert(mode)


def write_image(
    path: str | Path, mode: str = "RGB", size: tuple[int, int] = (16, 16), seed: int = 0, color=None
) -> Path:
    """Write a valid image (format from the suffix) and return its path; parent dirs are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = make_image(mode, size, seed, color)
    if mode == "P":
        # Index 0 transparent: the loader must composite it, not drop the alpha to black.
        img.save(path, transparency=0)
    else:
        img.save(path)
    return path


def image_bytes(size: tuple[int, int] = (16, 16), seed: int = 0, fmt: str = "PNG", color=None) -> bytes:
    """Return the encoded bytes of a random (or flat ``color``) RGB image."""
    buf = io.BytesIO()
    Image.fromarray(rgb_array(size, seed, color)).save(buf, format=fmt)
    return buf.getvalue()


def bad_bytes(kind: str, seed: int = 0) -> bytes:
    """Return the content of a broken file of ``kind`` (a key of :data:`BAD_KINDS`)."""
    if kind == "zero_byte":
        return b""
    if kind in ("truncated_png", "truncated_jpeg"):
        # Large noisy image so the cut lands inside the pixel data, past the header.
        data = image_bytes((64, 64), seed, "PNG" if kind == "truncated_png" else "JPEG")
        return data[: len(data) // 2]
    if kind == "random_bytes":
        return np.random.default_rng(seed).integers(0, 256, 512, dtype=np.uint8).tobytes()
    raise ValueError(f"unknown bad image kind {kind!r}; choose from {sorted(BAD_KINDS)}")


def write_bad(path: str | Path, kind: str, seed: int = 0) -> Path:
    """Write a broken image file of ``kind`` and return its path; parent dirs are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad_bytes(kind, seed))
    return path
