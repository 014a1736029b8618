"""Named chains of random degradations, drawn per image so that every run sees the same ones.

``ai_genbench``: AI-GenBench's mandatory evaluation degradations (Pellegrini et al. 2025; the
``mandatory_val_preprocessing`` of its ``AIGenBenchPipeline``, MI-BioLab/AI-GenBench 2332e50),
applied to its validation and test images, real and fake alike, in this order:

1. a central crop to at most 1080 x 1080 (its ``maximum_processing_size``; smaller sides are kept);
2. grayscale (kept as three channels) with probability 0.1;
3. JPEG with probability 0.5;
4. additive Gaussian noise with probability 0.3: per pixel and channel, standard deviation drawn
   uniformly from 1.5 % to 7.5 % of 255, rounded and clipped to 0..255;
5. JPEG with probability 0.2;
6. with probability 0.25 a random resized crop: a square output of a side drawn from 256..512
   (both included), area 50–100 % of the image, aspect 0.9–1/0.9 (torchvision's
   ``RandomResizedCrop`` parameters), resampled bilinear, bicubic or Lanczos, drawn uniformly;
7. JPEG with probability 0.1.

JPEG quality: the code passes ``[50, 101]`` to a function that picks one element of the list, so
every JPEG step encodes at quality 50 or at 101 (which libjpeg clamps to 100), each with
probability 1/2, not at a quality drawn from 50–100 as the paper's wording suggests; we follow the
code, which produced the published numbers. Its two encoders (OpenCV's and PIL's, drawn at random)
both wrap libjpeg with 4:2:0 chroma subsampling; we encode with PIL only. The code's "central" crop
is in fact drawn at random (its ``force_central_crop`` never reaches the crop); we crop centrally,
as documented. At pixel level, its steps after the noise run on float tensors (its JPEG steps then
truncate to 8 bits, its bilinear and bicubic resizes use torchvision's tensor kernels); ours run on
8-bit PIL images throughout. Draws come from ``numpy``'s PCG64 seeded with sha256 of the chain's seed and the
image's key (``<source>:<id>``), so they cannot match the authors' own draws image for image.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

#: AI-GenBench's ``maximum_processing_size``: larger images are cropped to it first.
MAX_SIDE = 1080
#: The JPEG qualities its code draws from (101 is clamped to 100 by libjpeg).
JPEG_QUALITIES = (50, 100)
NOISE_STD = (0.015, 0.075)
CROP_SIDES = (256, 512)
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (0.9, 1 / 0.9)
CROP_INTERPOLATIONS = (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC, InterpolationMode.LANCZOS)


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The generator of one image's draws: a fixed function of the chain's seed and the image's key."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def ai_genbench(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """AI-GenBench's mandatory evaluation degradations of one RGB image (see the module docstring)."""
    img = _central_crop(img.convert("RGB"), MAX_SIDE)
    if rng.random() < 0.1:
        img = F.rgb_to_grayscale(img, num_output_channels=3)
    if rng.random() < 0.5:
        img = _jpeg(img, rng)
    if rng.random() < 0.3:
        img = _gaussian_noise(img, rng)
    if rng.random() < 0.2:
        img = _jpeg(img, rng)
    if rng.random() < 0.25:
        img = _resized_crop(img, rng)
    if rng.random() < 0.1:
        img = _jpeg(img, rng)
    return img


#: Chain name (the protocol's ``perturb.chain``) -> the function applying it.
CHAINS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {"ai_genbench": ai_genbench}


def _central_crop(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    if w <= side and h <= side:
        return img
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.choice(JPEG_QUALITIES)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _gaussian_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    std = rng.uniform(*NOISE_STD) * 255.0
    pixels = np.asarray(img, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, std, size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def _resized_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(CROP_SIDES[0], CROP_SIDES[1] + 1))
    interpolation = CROP_INTERPOLATIONS[int(rng.integers(len(CROP_INTERPOLATIONS)))]
    # torchvision draws the crop box from torch's global CPU generator: seed it inside a fork that restores it
    # (torch.manual_seed would also reseed every GPU's generator, which the fork does not restore).
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(rng.integers(2**63)))
        top, left, h, w = RandomResizedCrop.get_params(img, list(CROP_SCALE), list(CROP_RATIO))
    return F.resized_crop(img, top, left, h, w, [side, side], interpolation=interpolation)
