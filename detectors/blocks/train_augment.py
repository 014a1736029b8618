"""Training augmentations of the published recipes (Effort-face, GenD, RINE), on PIL images.

Randomness comes from ``torch`` and ``random`` only: the dataset seeds both per (seed, epoch, row),
so every image gets the same augmentation in every run. Written from each recipe's description in
the papers and the reference specification, not from the authors' code.
"""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms import v2

from bench.plugin.transforms import truncating_blur


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at ``quality`` (PIL's encoder)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _u(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


class BlurJpegChoice:
    """RINE (CNNDetection-style): Gaussian blur σ ~ U[0, 3] with prob ``p`` (per channel into the uint8 image,
    :func:`bench.plugin.transforms.truncating_blur`), then JPEG with prob ``p`` at a quality drawn from
    ``qualities`` (RINE: {30, 100}, two values only)."""

    def __init__(self, p: float = 0.5, sigma: tuple[float, float] = (0.0, 3.0), qualities: tuple[int, ...] = (30, 100)):
        self.p, self.sigma, self.qualities = p, sigma, qualities

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() < self.p:
            img = truncating_blur(img, random.uniform(*self.sigma))
        if random.random() < self.p:
            img = jpeg(img, random.choice(self.qualities))
        return img

    def __repr__(self) -> str:
        return f"BlurJpegChoice(p={self.p}, sigma={self.sigma}, qualities={self.qualities})"


def gend_augment() -> v2.Compose:
    """GenD: flip 0.5, RandomAffine(±10°, translate 0.1, scale 0.9–1.1), GaussianBlur(k 7, σ 0.1–2) with
    prob 0.1, ColorJitter(brightness 0.1, contrast 0.1), and JPEG q 40–100 on every image."""
    return v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        v2.RandomApply([v2.GaussianBlur(7, sigma=(0.1, 2.0))], p=0.1),
        v2.ColorJitter(brightness=0.1, contrast=0.1),
        v2.JPEG((40, 100)),
    ])


class DeepfakeBenchFaceAugment:
    """Effort's face training augmentation (the DeepfakeBench fork's hard-coded pipeline), in order:
    brightness/contrast ±0.2 (p 0.5), hue/saturation/value shift 20/30/20 (p 0.3), JPEG q 40–100
    (p 0.1), Gaussian noise var 10–50 (p 0.1), motion blur k 3–7 (p 0.1), CLAHE (p 0.1), channel
    shuffle (p 0.1), cutout 8 holes of 8 px (p 0.1), gamma 0.8–1.2 (p 0.3), glass blur σ 0.7, Δ 4,
    2 iterations (p 0.3). The flip (p 0.5) comes from the transform. Each op follows its library's
    default parameters; CLAHE (scikit-image's) and glass blur (a random displacement, not pixel swaps)
    are close re-implementations, not bit-equal to albumentations.
    """

    def __call__(self, img: Image.Image) -> Image.Image:
        x = np.asarray(img.convert("RGB"), dtype=np.float32)
        if random.random() < 0.5:
            x = x * _u(0.8, 1.2) + _u(-0.2, 0.2) * 255
        if random.random() < 0.3:
            hsv = np.asarray(Image.fromarray(_u8(x)).convert("HSV"), dtype=np.float32)
            hsv[..., 0] = (hsv[..., 0] + _u(-20, 20) * 256 / 180) % 256
            hsv[..., 1] += _u(-30, 30)
            hsv[..., 2] += _u(-20, 20)
            x = np.asarray(Image.fromarray(_u8(hsv), "HSV").convert("RGB"), dtype=np.float32)
        if random.random() < 0.1:
            x = np.asarray(jpeg(Image.fromarray(_u8(x)), random.randint(40, 100)), dtype=np.float32)
        if random.random() < 0.1:
            x = x + torch.randn(x.shape).numpy() * np.sqrt(_u(10, 50))
        if random.random() < 0.1:
            x = _motion_blur(x, random.choice((3, 5, 7)))
        if random.random() < 0.1:
            from skimage.exposure import equalize_adapthist

            x = equalize_adapthist(_u8(x), clip_limit=0.04).astype(np.float32) * 255
        if random.random() < 0.1:
            x = x[..., torch.randperm(3).numpy()]
        if random.random() < 0.1:
            x = _cutout(x, holes=8, size=8)
        if random.random() < 0.3:
            x = 255 * (np.clip(x, 0, 255) / 255) ** _u(0.8, 1.2)
        if random.random() < 0.3:
            x = _glass_blur(x, sigma=0.7, max_delta=4, iterations=2)
        return Image.fromarray(_u8(x))

    def __repr__(self) -> str:
        return "DeepfakeBenchFaceAugment()"


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _conv(x: np.ndarray, kernel: torch.Tensor) -> np.ndarray:
    """Depthwise 2-D convolution of an H×W×3 array with a square kernel, reflect padding."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]
    pad = kernel.shape[-1] // 2
    t = F.pad(t, (pad,) * 4, mode="reflect")
    out = F.conv2d(t, kernel.expand(3, 1, *kernel.shape).to(t.dtype), groups=3)
    return out[0].permute(1, 2, 0).numpy()


def _motion_blur(x: np.ndarray, k: int) -> np.ndarray:
    kernel = torch.zeros(k, k)
    angle = _u(0, np.pi)
    for t in np.linspace(-(k // 2), k // 2, 2 * k):
        kernel[int(np.rint(k // 2 + t * np.sin(angle))), int(np.rint(k // 2 + t * np.cos(angle)))] = 1
    return _conv(x, kernel / kernel.sum())


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    g = g / g.sum()
    return _conv(x, g[:, None] * g[None, :])


def _glass_blur(x: np.ndarray, sigma: float, max_delta: int, iterations: int) -> np.ndarray:
    h, w = x.shape[:2]
    x = _gauss(x, sigma)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for _ in range(iterations):
        dy, dx = (torch.randint(-max_delta, max_delta, (2, h, w)).numpy())
        x = x[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
    return _gauss(x, sigma)


def _cutout(x: np.ndarray, holes: int, size: int) -> np.ndarray:
    x = x.copy()
    h, w = x.shape[:2]
    for _ in range(holes):
        y0, x0 = random.randrange(h), random.randrange(w)
        x[y0:y0 + size, x0:x0 + size] = 0
    return x
