"""Image operations and training augmentations of the published recipes (SAFE, DeepfakeBench, SBI).

Operations work on uint8 ``H×W×3`` numpy arrays (or PIL images where noted) and take their random
draws from Python's ``random`` module or torch, which the loader seeds per (seed, epoch, row), so a
sample gets the same augmentation whatever the number of processes or workers. Parameters follow
the albumentations conventions the reference recipes were written in (uint8 units: hue in OpenCV's
0–179 steps, saturation/value and RGB shifts in 0–255 steps, brightness as a fraction of 255).
"""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import Tensor


def to_array(img: Image.Image) -> np.ndarray:
    """PIL → uint8 H×W×3."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def to_image(arr: np.ndarray) -> Image.Image:
    """float or uint8 H×W×3 → PIL (rounded and clipped to 0–255)."""
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def gaussian_kernel(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """OpenCV's normalised 1-D Gaussian; ``sigma <= 0`` derives it from ``ksize`` as OpenCV does."""
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(arr: np.ndarray, ksize: int, sigma: float = 0.0) -> np.ndarray:
    """Separable Gaussian blur of a 2-D or H×W×C float array, OpenCV's default (reflect-101) border."""
    k = gaussian_kernel(ksize, sigma)
    out = ndimage.correlate1d(arr.astype(np.float64), k, axis=0, mode="mirror")
    return ndimage.correlate1d(out, k, axis=1, mode="mirror")


def rgb_shift(arr: np.ndarray, shifts: tuple[float, float, float]) -> np.ndarray:
    """Add a per-channel offset (0–255 units)."""
    return np.clip(arr.astype(np.float64) + np.asarray(shifts), 0, 255)


def hsv_shift(arr: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """Shift hue (OpenCV's 0–179 steps, cyclic), saturation and value (0–255 steps)."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(np.clip(arr, 0, 255).astype(np.float64) / 255.0)
    hsv[..., 0] = (hsv[..., 0] + hue / 180.0) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] + sat / 255.0, 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] + val / 255.0, 0, 1)
    return hsv2rgb(hsv) * 255.0


def brightness_contrast(arr: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """``x·(1 + contrast) + brightness·255`` (albumentations' brightness-by-max convention)."""
    return np.clip(arr.astype(np.float64) * (1.0 + contrast) + brightness * 255.0, 0, 255)


def fancy_pca(arr: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """AlexNet's PCA colour augmentation: add ``Σ αᵢ λᵢ vᵢ`` from the image's RGB covariance (0–1 scale)."""
    x = arr.reshape(-1, 3).astype(np.float64) / 255.0
    values, vectors = np.linalg.eigh(np.cov(x - x.mean(0), rowvar=False) + 1e-12 * np.eye(3))
    return np.clip(arr / 255.0 + vectors @ (alphas * values), 0, 1) * 255.0


def sharpen(arr: np.ndarray, alpha: float, lightness: float) -> np.ndarray:
    """albumentations' Sharpen: convolve with ``(1−α)·I + α·[[-1,-1,-1],[-1,8+L,-1],[-1,-1,-1]]``."""
    kernel = -np.ones((3, 3))
    kernel[1, 1] = 8 + lightness
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    kernel = (1 - alpha) * identity + alpha * kernel
    out = np.stack([ndimage.correlate(arr[..., c].astype(np.float64), kernel, mode="mirror") for c in range(3)], -1)
    return np.clip(out, 0, 255)


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at ``quality`` (PIL)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def rotate_reflect(img: Image.Image, degrees: float) -> Image.Image:
    """Rotate about the centre (bilinear) with reflected borders, as albumentations' Rotate does."""
    arr = to_array(img)
    pad = int(np.ceil(max(arr.shape[:2]) * 0.3))
    padded = Image.fromarray(np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
    turned = padded.rotate(degrees, resample=Image.BILINEAR)
    return turned.crop((pad, pad, pad + img.width, pad + img.height))


class RandomPatchMask:
    """SAFE's RandomMask on a ``[C, H, W]`` tensor: with prob ``p``, zero a fraction ~U(0, ``max_ratio``)
    of the ``patch``×``patch`` cells of a grid aligned to the top-left corner."""

    def __init__(self, p: float = 0.5, max_ratio: float = 0.75, patch: int = 16):
        self.p, self.max_ratio, self.patch = p, max_ratio, patch

    def __call__(self, x: Tensor) -> Tensor:
        if torch.rand(()) >= self.p:
            return x
        rows, cols = -(-x.shape[1] // self.patch), -(-x.shape[2] // self.patch)
        n = int(float(torch.rand(())) * self.max_ratio * rows * cols)
        x = x.clone()
        for cell in torch.randperm(rows * cols)[:n].tolist():
            r, c = divmod(cell, cols)
            x[:, r * self.patch:(r + 1) * self.patch, c * self.patch:(c + 1) * self.patch] = 0
        return x

    def __repr__(self) -> str:
        return f"RandomPatchMask(p={self.p}, max_ratio={self.max_ratio}, patch={self.patch})"


class DeepfakeBenchAugment:
    """DeepfakeBench's training augmentation for face crops (PIL in, PIL out), in its order:
    horizontal flip; rotation ±``rotate_limit``° (reflected borders); Gaussian blur with an odd kernel
    of 3–7; one of {brightness/contrast ±0.1, FancyPCA (α σ 0.1), HSV shift (hue ±20, sat ±30,
    val ±20)}; JPEG with quality uniform in ``jpeg_quality``. Each with its own probability.
    """

    def __init__(self, flip_prob: float = 0.5, rotate_prob: float = 0.0, rotate_limit: float = 10.0,
                 blur_prob: float = 0.5, color_prob: float = 0.5, jpeg_prob: float = 0.5,
                 jpeg_quality: tuple[int, int] = (40, 100)):
        self.flip_prob, self.rotate_prob, self.rotate_limit = flip_prob, rotate_prob, rotate_limit
        self.blur_prob, self.color_prob = blur_prob, color_prob
        self.jpeg_prob, self.jpeg_quality = jpeg_prob, tuple(jpeg_quality)

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() < self.flip_prob:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if random.random() < self.rotate_prob:
            img = rotate_reflect(img, random.uniform(-self.rotate_limit, self.rotate_limit))
        if random.random() < self.blur_prob:
            img = to_image(gaussian_blur(to_array(img), random.choice((3, 5, 7))))
        if random.random() < self.color_prob:
            arr, which = to_array(img), random.randrange(3)
            if which == 0:
                arr = brightness_contrast(arr, random.uniform(-0.1, 0.1), random.uniform(-0.1, 0.1))
            elif which == 1:
                arr = fancy_pca(arr, np.array([random.gauss(0, 0.1) for _ in range(3)]))
            else:
                arr = hsv_shift(arr, random.uniform(-20, 20), random.uniform(-30, 30), random.uniform(-20, 20))
            img = to_image(arr)
        if random.random() < self.jpeg_prob:
            img = jpeg(img, random.randint(*self.jpeg_quality))
        return img

    def __repr__(self) -> str:
        return (f"DeepfakeBenchAugment(flip={self.flip_prob}, rotate={self.rotate_prob}±{self.rotate_limit}, "
                f"blur={self.blur_prob}, color={self.color_prob}, jpeg={self.jpeg_prob}@{self.jpeg_quality})")
