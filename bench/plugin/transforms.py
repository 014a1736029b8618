"""Image transforms built from a detector's ``DataConfig``, plus UnivFD-style blur/JPEG augmentation.

The pipeline is built with torchvision's transforms v2, so one transform accepts either a PIL
image or a uint8 ``[3, H, W]`` tensor (the faster decode path, ``RawDataset(tensor_input=True)``):

- a PIL image goes through exactly the operations and arithmetic of the original v1 pipeline
  (PIL resize, crop, flip, ``ToTensor``'s ``/ 255``, normalise): bit-identical outputs;
- a uint8 tensor is resized by torchvision's antialiased uint8 kernels (which follow PIL's), so its
  output equals the PIL path's within :data:`TENSOR_TOLERANCE` grey levels before normalisation,
  i.e. ``TENSOR_TOLERANCE / 255 / min(std)`` after it. Measured on the bundled photos at 64 and
  224 px, bicubic and bilinear, train and eval: max 1 level (0.0078 after normalising with std
  0.5), mean ≤ 2e-5; the same photos JPEG-compressed first reach 2 levels with bicubic at 224 px
  (mean 0.003 levels). ``tests/test_transforms.py`` asserts the bound.

Random draws (crop offset, flip) come from torch's global RNG in the same order on both paths, and
in the same order as before the move to v2, so a row seeded the same way gets the same
augmentation whichever input it is given.
"""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import RandomCrop, v2
from torchvision.transforms import functional as F

from bench.plugin.types import DataConfig

_INTERPOLATION = {
    "bicubic": v2.InterpolationMode.BICUBIC,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,
}
#: Largest difference, in grey levels before normalisation, between the PIL and the tensor path.
TENSOR_TOLERANCE = 2


class ToFloat:
    """PIL image or uint8 tensor -> float32 ``[3, H, W]`` in [0, 1], with ``ToTensor``'s exact arithmetic."""

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, Image.Image):
            return F.to_tensor(image)
        image = image.as_subclass(torch.Tensor)
        return image.float().div(255) if image.dtype == torch.uint8 else image.float()

    def __repr__(self) -> str:
        return "ToFloat()"


def build_transform(cfg: DataConfig, train: bool, augment=None, load_size: int = 0,
                    load_interpolation: str = "bilinear") -> v2.Compose:
    """Resize (or center-crop) to ``cfg.image_size``, flip when training, normalise.

    ``augment`` runs first in training, on whatever the pipeline was given (PIL or tensor).
    ``load_size`` > 0 puts a resize of the shorter side to ``load_size`` (``load_interpolation``) before
    it, in training only: the loaders of CNNDetection and UnivFD bring every training image to 256 px
    this way, then augment, then take a random crop of the native-resolution image.
    """
    steps: list = []
    if train and load_size > 0:
        steps.append(v2.Resize(load_size, interpolation=_INTERPOLATION[load_interpolation], antialias=True))
    if train and augment is not None:
        steps.append(augment)
    if cfg.resize == "resize":
        interpolation = _INTERPOLATION[cfg.interpolation]
        steps.append(v2.Resize(cfg.image_size, interpolation=interpolation, antialias=True))
    if train:
        # v1's RandomCrop (it takes PIL or tensors too): v2's skips the row draw when only the width
        # is cropped, which would change every non-square training crop of runs made before v2.
        steps += [RandomCrop(cfg.image_size, pad_if_needed=True), v2.RandomHorizontalFlip()]
    else:
        steps.append(v2.CenterCrop(cfg.image_size))
    steps += [ToFloat(), v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(steps)


def truncating_blur(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur as CNNDetection, UnivFD and RINE apply it: ``scipy.ndimage.gaussian_filter`` per channel,
    written into the uint8 image itself.

    scipy filters one axis after the other into the uint8 output, so each pass truncates towards zero:
    the result is about 0.9 grey level darker on average than an exact blur (a bias of the published models,
    kept on purpose). Reflected borders, truncated at 4 sigma (scipy's defaults).
    """
    from scipy.ndimage import gaussian_filter

    arr = np.array(img.convert("RGB"), dtype=np.uint8)
    for c in range(3):
        gaussian_filter(arr[..., c], sigma=sigma, output=arr[..., c])
    return Image.fromarray(arr)


class BlurJpeg:
    """CNNDetection/UnivFD training augmentation: Gaussian blur and JPEG re-compression, each with prob ``p``.

    The blur is :func:`truncating_blur` (the authors' arithmetic); JPEG is PIL's encoder, which gave the
    same bytes as OpenCV's (the authors draw either) at every quality checked.

    Accepts a PIL image or a uint8 ``[3, H, W]`` tensor and returns the same kind; a tensor is
    converted to PIL inside (JPEG needs an encoder; a GPU tensor goes to the CPU and back),
    losslessly, so both give the same pixels.
    """

    def __init__(self, p: float = 0.5, blur_sigma: tuple[float, float] = (0.0, 3.0),
                 jpeg_quality: tuple[int, int] = (30, 100)):
        self.p, self.blur_sigma, self.jpeg_quality = p, blur_sigma, jpeg_quality

    def __call__(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(img, torch.Tensor):
            pil = F.to_pil_image(img.as_subclass(torch.Tensor).cpu())
            return F.pil_to_tensor(self(pil)).to(img.device)
        if random.random() < self.p:
            img = truncating_blur(img, random.uniform(*self.blur_sigma))
        if random.random() < self.p:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=random.randint(*self.jpeg_quality))
            buf.seek(0)
            img = Image.open(buf).convert("RGB")
        return img

    def __repr__(self) -> str:
        return f"BlurJpeg(p={self.p}, blur_sigma={self.blur_sigma}, jpeg_quality={self.jpeg_quality})"
