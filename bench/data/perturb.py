"""Deterministic image degradations for robustness variants and format alignment."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from bench.data.perturb_chains import CHAINS, rng_for
from bench.protocol import Perturb


def apply_perturb(img: Image.Image, spec: Perturb, key: str = "") -> Image.Image:
    """Apply ``spec`` to ``img``: down-scale, then blur, then JPEG re-encoding (each only when set).

    A ``chain`` (``spec.chain``) is drawn from its seed and ``key``, the image's ``<source>:<id>``, so
    each image gets its own draws and the same ones in every run and process.

    Down-scaling is by a factor (``downscale``) or to a shorter side of ``shorter_side`` pixels (aspect
    kept; an image whose shorter side is already that small is left as it is). Every operation is
    deterministic, so an image gets the same degradation in every run and process.
    """
    if spec.chain is not None:
        return CHAINS[spec.chain](img, rng_for(spec.seed or 0, key))
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
