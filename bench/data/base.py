"""The data-source contract shared by every source type, and robust image decoding.

A source turns a spec (a mapping from a protocol or ``protocols/sources.yaml``) and a data root
into *tables*: one ``pandas.DataFrame`` per requested split with the columns of
:data:`TABLE_COLUMNS`. Images are decoded on demand by :meth:`Source.load`. Sources never see a
detector: the runner applies the detector's transform to the PIL image a source returns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from bench.errors import ConfigError, DataError, ImageError

#: Columns every table has. ``id`` is the source-relative identifier load() accepts (a relative path
#: for file sources), ``label`` 0 = real / 1 = fake, ``subset`` the generator or sub-dataset name,
#: ``group`` the video id for frame datasets (equal to ``id`` for still images).
TABLE_COLUMNS = ["id", "label", "split", "subset", "group"]


class Source:
    """Base class of data-source types (``folder``, ``manifest``, ``hf``, ``synthetic``, plugins).

    Subclasses set ``type_name``, declare their spec keys in ``spec_keys`` (key -> default; a key
    whose default is ``...`` is required) and implement :meth:`select` and :meth:`load`.
    """

    type_name: ClassVar[str] = ""
    spec_keys: ClassVar[dict[str, Any]] = {}
    #: False for sources that synthesise images in memory (no files to verify).
    has_files: ClassVar[bool] = True

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        self.name = name
        self.data_root = Path(data_root) if data_root is not None else None
        self.spec = self._validate_spec(spec)

    # -- contract -------------------------------------------------------------------------------
    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Return the table of ``split`` (restricted to ``subsets`` when given), sorted and indexed 0..n-1."""
        raise NotImplementedError("subclasses implement select()")

    def load(self, item_id: str) -> Image.Image:
        """Return the RGB PIL image for one ``id`` of a table this source produced."""
        raise NotImplementedError("subclasses implement load()")

    # -- shared helpers -------------------------------------------------------------------------
    def _validate_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        spec = dict(spec)
        spec.pop("type", None)
        unknown = sorted(set(spec) - set(self.spec_keys))
        if unknown:
            from bench.errors import did_you_mean

            key = unknown[0]
            raise ConfigError(
                f"Source {self.name!r} (type {self.type_name}) has unknown key {key!r};"
                f"{did_you_mean(key, self.spec_keys) or ''} allowed keys: {', '.join(sorted(self.spec_keys))}."
            )
        out = {}
        for key, default in self.spec_keys.items():
            if key in spec:
                out[key] = spec[key]
            elif default is ...:
                raise ConfigError(f"Source {self.name!r} (type {self.type_name}) needs the key {key!r}.")
            else:
                out[key] = default
        return out

    def resolve(self, relative: str | Path) -> Path:
        """Resolve a path relative to the data root, with a clear error when no root is set."""
        if self.data_root is None:
            raise DataError(
                f"Source {self.name!r} reads files but no data root is set; pass --data-root DIR "
                "or set BENCH_DATA_ROOT."
            )
        return self.data_root / relative

    @staticmethod
    def fingerprint(table: pd.DataFrame) -> str:
        """A cheap content-list hash: sha256 of the sorted (id, label) pairs."""
        h = hashlib.sha256()
        for item_id, label in sorted(zip(table["id"].astype(str), table["label"].astype(int))):
            h.update(f"{item_id}\t{label}\n".encode())
        return "sha256:" + h.hexdigest()

    def find_bad_images(self, table: pd.DataFrame) -> list[tuple[str, str]]:
        """Decode every image of ``table``; return ``(id, reason)`` for each one that fails."""
        if not self.has_files:
            return []
        bad = []
        for item_id in table["id"]:
            try:
                self.load(item_id)
            except ImageError as err:
                bad.append((item_id, str(err)))
        return bad


def make_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a table with the standard columns, sorted by id for a deterministic order."""
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["label"] = table["label"].astype(int)
    return table.sort_values("id", kind="stable").reset_index(drop=True)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, 1) to 8-bit RGB.

    Transparency is composited on white (not dropped to black), and 16-bit or float images are
    rescaled from their own range instead of being clipped.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(path: Path) -> Image.Image:
    """Fully decode ``path`` into an RGB image, raising :class:`ImageError` with the reason."""
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is a zero-byte file")
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError as err:
        raise ImageError(f"{path} does not exist") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"{path} cannot be decoded ({type(err).__name__}: {err})") from err
