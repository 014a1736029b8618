"""Self-blended images (Shiohara & Yamasaki, CVPR 2022), rebuilt clean-room from the paper's description.

A real image is blended with a slightly transformed copy of itself inside a soft face-region mask,
so the fake carries only blending traces (boundary, colour and frequency mismatch) and no identity
change. Per real training image (pure functions of the image, its landmarks and a numpy Generator):

1. flip image (and landmarks) with p 0.5;
2. mask: the convex hull of the facial landmarks (with 81 points, the first 68 only with p 0.25) or,
   without landmarks, the landmark-free face-region mask (:func:`face_region_mask`);
3. source = target = the image; the *source transform* (RGB shift ±20 p 0.3, HSV shift ±0.3 p 1,
   brightness/contrast ±0.1 p 1, then one of {down-scale by 2 or 4 (nearest) and back (linear),
   sharpen α 0.2–0.5}) goes to the source with p 0.5, else to the target; the **target, transformed or
   not, is the pair's real image**, so real and fake differ only inside the mask;
4. source-only jitter: affine (translate x ±3 %, y ±1.5 %, scale 0.95–1/0.95) on source and mask,
   elastic deformation (α 50, σ 7) on the mask only;
5. soft mask (:func:`soften_mask`): resize to a random 192–256 height and an independent 192–256 width,
   blur (odd kernel 5–25), divide by the maximum and keep the ≥ 0.5 level set (:func:`mask_core`), blur
   again (odd kernel 5–25, integer σ 5–45), divide by the maximum, resize back, multiply by a ratio
   from {0.25, 0.5, 0.75, 1, 1, 1};
6. fake = mask·source + (1 − mask)·target;
7. joint transform, the same draw for real and fake: RGB shift ±20 p 0.3, HSV ±0.3 p 0.3,
   brightness/contrast ±0.3 p 0.3, JPEG quality 40–100 p 0.5.

Where the paper gives no number the authors' released training (the code that produced their
models) was followed, as read in their description and measured against it: the down-scale factors,
the ≥ 0.5 threshold (their mask is 8-bit, so "blurred value equal to its maximum" holds wherever the
blur rounds to 1) and integer σ. Our own choices: the landmark-free mask, and no Face-X-ray hull
deformation (the authors use it when that library is installed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull

from bench.errors import DataError
from detectors.blocks import augment as A


def hull_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float mask [H, W] with 1 inside the convex hull of ``points`` ([K, 2], x/y pixel coordinates)."""
    w, h = size
    canvas = Image.new("L", (w, h), 0)
    hull = points[ConvexHull(points).vertices] if len(points) >= 3 else points
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in hull.tolist()], fill=1)
    return np.asarray(canvas, dtype=np.float64)


def landmark_mask(landmarks: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The landmarks' convex hull; with 81 points (dlib 68 + forehead), the first 68 only with p 0.25."""
    points = np.asarray(landmarks, dtype=np.float64)
    if len(points) == 81 and rng.random() < 0.25:
        points = points[:68]
    return hull_mask(points, size)


def face_region_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Landmark-free mask: the convex hull of 6–12 points drawn uniformly inside the central ellipse
    where an aligned face crop has its face (centre (0.5 W, 0.55 H), semi-axes (0.32 W, 0.40 H)),
    the ellipse jittered by ±15 % in centre and axes."""
    w, h = size
    cx, cy = w * (0.5 + rng.uniform(-0.05, 0.05)), h * (0.55 + rng.uniform(-0.05, 0.05))
    ax, ay = 0.32 * w * rng.uniform(0.85, 1.15), 0.40 * h * rng.uniform(0.85, 1.15)
    n = int(rng.integers(6, 13))
    angle, radius = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0.3, 1.0, n))
    points = np.stack([cx + ax * radius * np.cos(angle), cy + ay * radius * np.sin(angle)], 1)
    return hull_mask(points, size)


def _odd(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.choice(np.arange(low, high + 1, 2)))


def _resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").resize(size, Image.BILINEAR), np.float64)


def mask_core(mask: np.ndarray, kernel: int) -> np.ndarray:
    """Step 5's hard core: blur (odd ``kernel``), divide by the maximum, keep the ≥ 0.5 level set (0/1).

    The authors keep the pixels whose blurred value equals the maximum, on an 8-bit mask: the blur rounds
    to 1 wherever it reaches 0.5, so the region kept is the ≥ 0.5 level set, the hull itself (not eroded).
    """
    m = A.gaussian_blur(mask, kernel)
    peak = m.max()
    return (m >= 0.5 * peak).astype(np.float64) if peak > 0 else np.zeros_like(m)


def soften_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 5: the soft blending mask in [0, 1] from a hard mask."""
    h, w = mask.shape
    size = (int(rng.integers(192, 257)), int(rng.integers(192, 257)))  # width and height, drawn independently
    m = mask_core(_resize(mask, size), _odd(rng, 5, 25))
    m = A.gaussian_blur(m, _odd(rng, 5, 25), float(rng.integers(5, 46)))
    m = m / m.max() if m.max() > 0 else m
    return _resize(m, (w, h)) * float(rng.choice([0.25, 0.5, 0.75, 1, 1, 1]))


def random_downscale(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down-scale a float H×W×3 image by 2 or 4 and back: the high frequencies the source loses.

    Down: the size divided by the factor and truncated, nearest neighbour as OpenCV picks it (output pixel
    i reads ⌊i·H/h⌋); up: linear with half-pixel centres.
    """
    import torch
    from torch.nn import functional as F

    r = int(rng.choice([2, 4]))
    h, w = arr.shape[:2]
    dh, dw = max(1, h // r), max(1, w // r)
    rows, cols = (np.floor(np.arange(d) * (n / d)).astype(int) for d, n in ((dh, h), (dw, w)))
    small = arr[rows][:, cols]
    t = torch.from_numpy(np.ascontiguousarray(small, dtype=np.float64)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def source_transform(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 3's colour and frequency transform (float H×W×3, 0–255)."""
    if rng.random() < 0.3:
        arr = A.rgb_shift(arr, tuple(rng.uniform(-20, 20, 3)))
    arr = A.hsv_shift(arr, *rng.uniform(-0.3, 0.3, 3))
    arr = A.brightness_contrast(arr, rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1))
    if rng.random() < 0.5:
        return random_downscale(arr, rng)
    return A.sharpen(arr, rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0))


def jitter_source(arr: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: the same small affine on source and mask; an elastic deformation of the mask only."""
    h, w = mask.shape
    tx, ty, s = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.015, 0.015) * h, rng.uniform(0.95, 1 / 0.95)
    # Output pixel p reads input (p − c − t)/s + c: scale about the centre c, then translate by t.
    matrix, centre = np.eye(2) / s, np.array([h / 2, w / 2])
    offset = centre - (centre + np.array([ty, tx])) / s
    arr = np.stack([ndimage.affine_transform(arr[..., c], matrix, offset, order=1, mode="nearest")
                    for c in range(3)], -1)
    mask = ndimage.affine_transform(mask, matrix, offset, order=1, mode="constant")
    dy, dx = (ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), 7) * 50 for _ in range(2))
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    mask = ndimage.map_coordinates(mask, [yy + dy, xx + dx], order=1, mode="constant")
    return arr, np.clip(mask, 0, 1)


def joint_transform(images: list[np.ndarray], rng: np.random.Generator) -> list[Image.Image]:
    """Step 7: one draw of the colour/JPEG transform, applied to every image."""
    shift = rng.uniform(-20, 20, 3) if rng.random() < 0.3 else None
    hsv = rng.uniform(-0.3, 0.3, 3) if rng.random() < 0.3 else None
    bc = rng.uniform(-0.3, 0.3, 2) if rng.random() < 0.3 else None
    quality = int(rng.integers(40, 101)) if rng.random() < 0.5 else None
    out = []
    for arr in images:
        arr = A.rgb_shift(arr, tuple(shift)) if shift is not None else arr
        arr = A.hsv_shift(arr, *hsv) if hsv is not None else arr
        arr = A.brightness_contrast(arr, *bc) if bc is not None else arr
        img = A.to_image(arr)
        out.append(A.jpeg(img, quality) if quality is not None else img)
    return out


@dataclass
class Blend:
    """One self-blend: the real and fake images, the soft mask used, and which mask kind made it."""

    real: Image.Image
    fake: Image.Image
    mask: np.ndarray
    mask_kind: str


def self_blend(image: Image.Image, landmarks: np.ndarray | None, rng: np.random.Generator,
               joint: bool = True, target_transform_prob: float = 0.5) -> Blend:
    """Steps 1–7 for one real image; the fake differs from the real only where the mask is non-zero.
    ``joint=False`` leaves out step 7; ``target_transform_prob`` is step 3's choice (0: always the source)."""
    arr = A.to_array(image).astype(np.float64)
    h, w = arr.shape[:2]
    points = None if landmarks is None else np.asarray(landmarks, dtype=np.float64).copy()
    if rng.random() < 0.5:
        arr = arr[:, ::-1].copy()
        if points is not None:
            points[:, 0] = (w - 1) - points[:, 0]
    hard = landmark_mask(points, (w, h), rng) if points is not None else face_region_mask((w, h), rng)
    source, target = arr.copy(), arr.copy()
    if rng.random() < target_transform_prob:
        target = source_transform(target, rng)
    else:
        source = source_transform(source, rng)
    source, hard = jitter_source(source, hard, rng)
    mask = soften_mask(hard, rng)[..., None]
    fake = mask * source + (1 - mask) * target
    pair = joint_transform([target, fake], rng) if joint else [A.to_image(target), A.to_image(fake)]
    return Blend(pair[0], pair[1], mask[..., 0], "landmarks" if points is not None else "landmark_free")


class SelfBlendBuilder:
    """``Detector.train_sample_builder`` of SBI: a real row → [(real, 0), (self-blend, 1)]; a fake row → [].

    ``mask``: ``"auto"`` (landmarks when the row has them, else the landmark-free mask),
    ``"landmarks"`` (a row without landmarks is an error) or ``"landmark_free"``. Randomness comes from
    Python's ``random``, which the loader seeds per (seed, epoch, row).
    """

    def __init__(self, mask: str = "auto"):
        self.mask = mask

    def mask_kind(self, extras: dict[str, Any]) -> str:
        """Which mask a row gets: ``"landmarks"`` or ``"landmark_free"`` (a function of its extras only)."""
        landmarks = extras.get("landmarks")
        has = landmarks is not None
        if has and (np.ndim(landmarks) != 2 or np.shape(landmarks)[1] != 2 or len(landmarks) < 3):
            raise DataError(f"Row {extras.get('id')!r} of source {extras.get('source')!r} has landmarks of shape "
                            f"{np.shape(landmarks)}; SBI needs [K, 2] pixel coordinates with K >= 3.")
        if self.mask == "landmarks" and not has:
            raise DataError(f"SBI is set to mask='landmarks' but row {extras.get('id')!r} of source "
                            f"{extras.get('source')!r} has no landmarks; index the dataset with its landmark "
                            f"files or run with -o mask=auto.")
        return "landmarks" if has and self.mask != "landmark_free" else "landmark_free"

    def __call__(self, image: Image.Image, label: int, extras: dict[str, Any]) -> list[tuple[Image.Image, int]]:
        if int(label) != 0:
            return []
        kind = self.mask_kind(extras)
        rng = np.random.default_rng(random.getrandbits(64))
        landmarks = extras.get("landmarks") if kind == "landmarks" else None
        blend = self_blend(image.convert("RGB"), landmarks, rng)
        return [(blend.real, 0), (blend.fake, 1)]

    def __repr__(self) -> str:
        return f"SelfBlendBuilder(mask={self.mask!r})"
