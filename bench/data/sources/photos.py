"""The natural photos bundled with scikit-image and scikit-learn, and random crops of them.

These are the real images of the ``synthetic`` source: no download is needed. Photos are decoded
once per process and kept in memory (about 7 MB for all eleven).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

from bench.errors import ConfigError, did_you_mean

#: Every bundled RGB photo, by the name a spec uses.
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "china",
    "flower",
)

#: Disjoint default split. The two motorcycle views show the same scene, so they stay together.
DEFAULT_PHOTOS = {
    "train": ["astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "flower"],
    "val": ["chelsea", "retina"],
    "test": ["coffee", "china", "immunohistochemistry"],
}

# Large photos are shrunk so that a crop covers a similar share of the scene whatever the photo.
_MAX_SIDE = 512
# Crops whose standard deviation is below this (grey levels) are flat (sky, black borders) and
# are redrawn, a bounded number of times.
_MIN_STD = 6.0
_CROP_TRIES = 8


def _decode(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(data, name)()


@cache
def load_photo(name: str) -> np.ndarray:
    """Return the bundled photo ``name`` as a read-only uint8 HxWx3 array (shorter side ≤ 512)."""
    if name not in PHOTO_NAMES:
        raise ConfigError(
            f"Unknown photo {name!r};{did_you_mean(name, PHOTO_NAMES) or ''} "
            f"choose from {', '.join(PHOTO_NAMES)}."
        )
    arr = np.ascontiguousarray(_decode(name)[..., :3], dtype=np.uint8)
    h, w = arr.shape[:2]
    scale = _MAX_SIDE / min(h, w)
    if scale < 1:
        img = Image.fromarray(arr).resize((round(w * scale), round(h * scale)), Image.LANCZOS)
        arr = np.asarray(img)
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 1x to 3x ``size`` pixels, resized to ``size``, maybe flipped (float32)."""
    h, w = photo.shape[:2]
    for _ in range(_CROP_TRIES):
        side = int(min(h, w, round(size * 2 ** rng.uniform(0.0, 1.6))))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        patch = photo[y : y + side, x : x + side]
        if patch.std() >= _MIN_STD:
            break
    if side != size:
        patch = np.asarray(Image.fromarray(patch).resize((size, size), Image.LANCZOS))
    out = patch.astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class PhotoPool:
    """The photos of one split; draws crops, optionally avoiding one photo (for blending donors)."""

    def __init__(self, names: list[str], size: int):
        self.names = list(names)
        self.size = size

    def crop(self, rng: np.random.Generator, exclude: int | None = None) -> tuple[np.ndarray, int]:
        """Return ``(crop, photo_index)``; with ``exclude`` another photo is used when there is one."""
        choices = [i for i in range(len(self.names)) if i != exclude] or list(range(len(self.names)))
        index = choices[int(rng.integers(len(choices)))]
        return random_crop(load_photo(self.names[index]), self.size, rng), index
