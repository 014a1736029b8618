"""Deterministic image degradations for robustness variants and format alignment."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from bench.protocol import Perturb


def apply_perturb(img: Image.Image, spec: Perturb) -> Image.Image:
    """Apply ``spec`` to ``img``: down-scale, then blur, then JPEG re-encoding (each only when set).

    Down-scaling is by a factor (``downscale``) or to a shorter side of ``shorter_side`` pixels (aspect
    kept; an image whose shorter side is already that small is left as it is). Every operation is
    deterministic, so an image gets the same degradation in every run and process.
    """
    w, h = img.size
    factor = spec.downscale
    if spec.shorter_side is not None and min(w, h) > spec.shorter_side:
        factor = spec.shorter_side / min(w, h)
    if factor is not None:
        small = (max(1, round(w * factor)), max(1, round(h * factor)))
        img = img.resize(small, Image.BICUBIC)
    if spec.blur is not None:
        img = img.filter(ImageFilter.GaussianBlur(spec.blur))
    if spec.jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=spec.jpeg)
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img
