"""Forgery generators and post-processing domains of the ``synthetic`` source.

A *generator* turns a real crop into a fake that carries a non-semantic trace of one *family*
(up-sampling, resynthesis, blending, inpainting, spectral peaks, double JPEG); every family has
several generators so a test generator can differ from the training one. A *domain* is
post-processing applied to real and fake images alike (``jpeg75``, ``resize0.5``, ``blur1``,
``noise3``, chained with ``+``). All functions work on float32 HxWx3 arrays in [0, 255] and draw
randomness only from the generator they are given, so an image is a function of its seed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image
from scipy import ndimage

from bench.errors import ConfigError, did_you_mean

Donor = Callable[[], np.ndarray]


# -- helpers ------------------------------------------------------------------------------------
def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def resize(img: np.ndarray, size: int, resample: int = Image.LANCZOS) -> np.ndarray:
    """Resize a square float image to ``size`` pixels with a PIL filter."""
    if img.shape[0] == size:
        return img
    out = Image.fromarray(to_uint8(img)).resize((size, size), resample)
    return np.asarray(out, dtype=np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG (4:2:0) at ``quality`` and decode again."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="reflect")


def _noise(shape: tuple[int, ...], rng: np.random.Generator, sigma: float) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32) * np.float32(sigma)


def _mask(shape: str, size: int, rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """A binary HxW float mask: ``ellipse``, ``rect`` or ``blob``, covering roughly ``area`` of the image."""
    frac = rng.uniform(*area)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    aspect = rng.uniform(0.7, 1.4)
    if shape == "blob":
        field = rng.standard_normal((5, 5)).astype(np.float32)
        field = resize(np.repeat((field * 40 + 128)[..., None], 3, 2), size, Image.BICUBIC)[..., 0]
        field -= 250 * ((yy - cy) ** 2 + (xx - cx) ** 2)  # keeps the blob away from the borders
        return (field >= np.quantile(field, 1 - frac)).astype(np.float32)
    if shape == "ellipse":
        ry = np.sqrt(frac / np.pi * aspect)
        rx = np.sqrt(frac / np.pi / aspect)
        return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1).astype(np.float32)
    hy, hx = np.sqrt(frac * aspect) / 2, np.sqrt(frac / aspect) / 2
    return ((np.abs(yy - cy) <= hy) & (np.abs(xx - cx) <= hx)).astype(np.float32)


# -- generator families -------------------------------------------------------------------------
def _upsample(img, rng, donor, method, factor):
    """GAN-like: the image is rendered at a lower resolution and up-sampled."""
    size = img.shape[0]
    low = resize(img, max(4, round(size / rng.uniform(*factor))))
    if method == "tconv":
        # A transposed convolution whose four phases have unequal kernel sums leaves a
        # multiplicative 2-pixel checkerboard on top of a smooth up-sampling.
        up = resize(low, size, Image.BILINEAR)
        a = rng.uniform(0.015, 0.04) * rng.choice([-1.0, 1.0], size=3)
        phase = np.indices((size, size)).sum(0) % 2 * 2 - 1
        return up * (1 + phase[..., None].astype(np.float32) * a.astype(np.float32))
    filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    return resize(low, size, filters[method])


def _resynth(img, rng, donor, kind):
    """Diffusion-like: high frequencies are removed and replaced by freshly generated noise."""
    if kind == "lowpass":
        size = img.shape[0]
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.rfftfreq(size)[None, :]
        cutoff = rng.uniform(0.18, 0.32)
        gain = 1 / (1 + (np.hypot(fy, fx) / cutoff) ** 8)
        spec = np.fft.rfft2(img, axes=(0, 1)) * gain[..., None]
        out = np.fft.irfft2(spec, s=(size, size), axes=(0, 1)).astype(np.float32)
        return out + _noise(img.shape, rng, rng.uniform(1.5, 3.0))
    if kind == "median":
        out = ndimage.median_filter(img, size=(3, 3, 1), mode="reflect")
        return out + _noise(img.shape, rng, rng.uniform(1.0, 2.5))
    # "vae": a latent decoder that keeps luma detail but smears chroma and adds correlated grain.
    luma = img @ np.float32([0.299, 0.587, 0.114])
    chroma = _blur(img - luma[..., None], rng.uniform(1.0, 2.0))
    grain = ndimage.gaussian_filter(_noise(img.shape[:2], rng, rng.uniform(3.0, 5.0)), 0.7)
    return _blur(luma[..., None], 0.5) + grain[..., None] + chroma


def _blend(img, rng, donor, shape):
    """Face-swap-like: a region of another photo, re-rendered and colour-shifted, feathered in."""
    size = img.shape[0]
    other = donor()
    other = resize(resize(other, round(size / rng.uniform(1.2, 1.8))), size, Image.BILINEAR)
    other = other * rng.uniform(0.92, 1.08, 3).astype(np.float32) + rng.uniform(-8, 8, 3).astype(np.float32)
    mask = ndimage.gaussian_filter(_mask(shape, size, rng, (0.15, 0.35)), rng.uniform(1.0, 2.5))
    return img * (1 - mask[..., None]) + other * mask[..., None]


def _inpaint(img, rng, donor, kind):
    """Object removal: a region is refilled from its surroundings."""
    size = img.shape[0]
    hole = _mask(rng.choice(["rect", "ellipse", "blob"]), size, rng, (0.08, 0.2))
    if kind == "smooth":
        # Normalised convolution: a smooth fill with no texture, plus a little regenerated noise.
        keep = 1 - hole
        sigma = size / 10
        num = _blur(img * keep[..., None], sigma)
        den = ndimage.gaussian_filter(keep, sigma)[..., None] + 1e-3
        fill = num / den + _noise(img.shape, rng, 1.5)
    else:
        # Copy-move: the hole is filled with another part of the same image.
        shift = rng.integers(size // 4, size // 2, 2) * rng.choice([-1, 1], 2)
        fill = np.roll(img, tuple(int(s) for s in shift), axis=(0, 1))
    soft = ndimage.gaussian_filter(hole, 0.8)[..., None]
    return img * (1 - soft) + fill * soft


def _peaks(img, rng, donor, period, direction):
    """A faint periodic pattern: sharp peaks in the spectrum, as from periodic generator layers."""
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 2)
    if direction == "grid":
        wave = np.cos(2 * np.pi * xx / period + phase[0]) + np.cos(2 * np.pi * yy / period + phase[1])
        wave /= 2
    elif direction == "diag":
        wave = np.cos(2 * np.pi * (xx + yy) / period + phase[0])
    else:
        wave = np.cos(2 * np.pi * (xx if rng.random() < 0.5 else yy) / period + phase[0])
    amp = rng.uniform(1.5, 3.5) * (1 + rng.uniform(-0.3, 0.3, 3))
    return img + wave[..., None] * amp.astype(np.float32)


def _double_jpeg(img, rng, donor, first_quality):
    """Double JPEG on a shifted grid: compressed once at an 8x8 offset, cropped, compressed again."""
    dy, dx = (int(v) for v in rng.integers(1, 8, 2))
    padded = np.pad(img, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
    first = jpeg(padded, int(rng.integers(*first_quality)))[dy:, dx:]
    return jpeg(first, int(rng.integers(85, 96)))


#: name -> (family, function(img, rng, donor) -> img)
GENERATORS: dict[str, tuple[str, Callable]] = {
    "upsample_nearest": ("upsample", partial(_upsample, method="nearest", factor=(1.5, 2.5))),
    "upsample_bilinear": ("upsample", partial(_upsample, method="bilinear", factor=(1.5, 2.5))),
    "upsample_bicubic": ("upsample", partial(_upsample, method="bicubic", factor=(1.5, 2.5))),
    "upsample_tconv": ("upsample", partial(_upsample, method="tconv", factor=(2.0, 2.0))),
    "resynth_lowpass": ("resynth", partial(_resynth, kind="lowpass")),
    "resynth_median": ("resynth", partial(_resynth, kind="median")),
    "resynth_vae": ("resynth", partial(_resynth, kind="vae")),
    "blend_ellipse": ("blend", partial(_blend, shape="ellipse")),
    "blend_rect": ("blend", partial(_blend, shape="rect")),
    "blend_blob": ("blend", partial(_blend, shape="blob")),
    "inpaint_smooth": ("inpaint", partial(_inpaint, kind="smooth")),
    "inpaint_copy": ("inpaint", partial(_inpaint, kind="copy")),
    "peaks_p4": ("peaks", partial(_peaks, period=4, direction="axis")),
    "peaks_grid8": ("peaks", partial(_peaks, period=8, direction="grid")),
    "peaks_diag5": ("peaks", partial(_peaks, period=5, direction="diag")),
    "djpeg_q50": ("djpeg", partial(_double_jpeg, first_quality=(40, 61))),
    "djpeg_q80": ("djpeg", partial(_double_jpeg, first_quality=(70, 86))),
}


def get_generator(name: str) -> Callable:
    """Return the generator function called ``name``, or raise a ConfigError listing the names."""
    if name not in GENERATORS:
        raise ConfigError(
            f"Unknown synthetic generator {name!r};{did_you_mean(name, GENERATORS) or ''} "
            f"choose from {', '.join(GENERATORS)}."
        )
    return GENERATORS[name][1]


# -- post-processing domains --------------------------------------------------------------------
#: kind -> (lowest, highest) accepted value; ``resize`` is a scale factor, the others sigma/quality.
DOMAIN_RANGES = {"jpeg": (1, 100), "resize": (0.25, 4.0), "blur": (0.1, 5.0), "noise": (0.1, 50.0)}
_OP = re.compile(r"^(jpeg|resize|blur|noise)(\d+(?:\.\d+)?)$")


def parse_domain(text: str) -> list[tuple[str, float]]:
    """Parse ``"jpeg75+resize0.5"`` into ``[("jpeg", 75), ("resize", 0.5)]``; ConfigError if invalid."""
    ops = []
    for part in text.split("+"):
        match = _OP.match(part)
        if not match:
            raise ConfigError(
                f"Unknown synthetic domain {part!r} in {text!r}; use jpeg<quality>, resize<factor>, "
                "blur<sigma> or noise<sigma> (e.g. jpeg75, resize0.5, blur1), joined with '+'."
            )
        kind, value = match.group(1), float(match.group(2))
        lo, hi = DOMAIN_RANGES[kind]
        whole = kind != "jpeg" or value == int(value)
        if not (lo <= value <= hi and whole) or (kind == "resize" and value == 1):
            raise ConfigError(
                f"Synthetic domain {part!r} is out of range; {kind} takes {lo} to {hi}"
                + (" (an integer)." if kind == "jpeg" else ", resize not 1.")
            )
        ops.append((kind, value))
    return ops


def domain_scale(ops: list[tuple[str, float]]) -> float:
    """The overall resize factor of a domain (images are generated at ``size / factor``)."""
    return float(np.prod([value for kind, value in ops if kind == "resize"] or [1.0]))


def apply_domain(img: np.ndarray, ops: list[tuple[str, float]], size: int, rng: np.random.Generator):
    """Apply the domain's operations in order; the last resize lands exactly on ``size`` pixels."""
    n_resize = sum(kind == "resize" for kind, _ in ops)
    for kind, value in ops:
        if kind == "jpeg":
            img = jpeg(img, int(value))
        elif kind == "blur":
            img = _blur(img, value)
        elif kind == "noise":
            img = img + _noise(img.shape, rng, value)
        else:
            n_resize -= 1
            target = size if n_resize == 0 else max(8, round(img.shape[0] * value))
            img = resize(img, target, Image.LANCZOS if value < 1 else Image.BICUBIC)
    return img
