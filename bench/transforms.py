"""Image transforms built from a detector's ``DataConfig``, plus UnivFD-style blur/JPEG augmentation."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageFilter
from torchvision import transforms as T

from bench.detector import DataConfig

_INTERPOLATION = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


def build_transform(cfg: DataConfig, train: bool, augment: T.Compose | None = None) -> T.Compose:
    """Resize (or center-crop) to ``cfg.image_size``, flip when training, normalise.

    ``augment`` runs on the PIL image first (training only).
    """
    steps: list = [augment] if (train and augment is not None) else []
    if cfg.resize == "resize":
        steps.append(T.Resize(cfg.image_size, interpolation=_INTERPOLATION[cfg.interpolation]))
    if train:
        steps += [T.RandomCrop(cfg.image_size, pad_if_needed=True), T.RandomHorizontalFlip()]
    else:
        steps.append(T.CenterCrop(cfg.image_size))
    steps += [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)]
    return T.Compose(steps)


class BlurJpeg:
    """CNNDetection/UnivFD training augmentation: Gaussian blur and JPEG re-compression, each with prob ``p``."""

    def __init__(self, p: float = 0.5, blur_sigma: tuple[float, float] = (0.0, 3.0),
                 jpeg_quality: tuple[int, int] = (30, 100)):
        self.p, self.blur_sigma, self.jpeg_quality = p, blur_sigma, jpeg_quality

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() < self.p:
            img = img.filter(ImageFilter.GaussianBlur(random.uniform(*self.blur_sigma)))
        if random.random() < self.p:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=random.randint(*self.jpeg_quality))
            buf.seek(0)
            img = Image.open(buf).convert("RGB")
        return img

    def __repr__(self) -> str:
        return f"BlurJpeg(p={self.p}, blur_sigma={self.blur_sigma}, jpeg_quality={self.jpeg_quality})"
