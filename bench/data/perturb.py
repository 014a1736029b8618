"""Deterministic image degradations for robustness variants and format alignment."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from bench.protocol import Perturb


def apply_perturb(img: Image.Image, spec: Perturb) -> Image.Image:
    """Apply ``spec`` to ``img``: down-scale, then blur, then JPEG re-encoding (each only when set).

    Every operation is deterministic, so an image gets the same degradation in every run and process.
    """
    if spec.downscale is not None:
        w, h = img.size
        small = (max(1, round(w * spec.downscale)), max(1, round(h * spec.downscale)))
        img = img.resize(small, Image.BICUBIC)
    if spec.blur is not None:
        img = img.filter(ImageFilter.GaussianBlur(spec.blur))
    if spec.jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=spec.jpeg)
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img
