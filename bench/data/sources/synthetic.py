"""The ``synthetic`` source: the embedded benchmark, generated in memory, no download.

Real images are random crops of the natural photos bundled with scikit-image and scikit-learn
(train, val and test use disjoint photos); fakes are the same kind of crops passed through a
generator of :mod:`bench.data.sources.forgeries`. A subset is named ``<generator>`` or
``<generator>@<domain>`` (e.g. ``blend_ellipse@jpeg75``): the domain is applied to real and fake
images alike. Every subset holds ``n_per_class[split]`` real and as many fake images.

Ids look like ``test/blend_ellipse@jpeg75/1/000123`` (split / subset / label / index) and every
image is a pure function of (spec, id): the k-th real image of a split is the same crop in every
subset of that split (only the domain differs), and the k-th fake starts from the same crop
whatever the generator, so test sets differ only in what they are meant to test.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from bench.data.base import Source, make_table
from bench.data.sources.forgeries import (
    GENERATORS,
    apply_domain,
    domain_scale,
    get_generator,
    parse_domain,
    to_uint8,
)
from bench.data.sources.photos import DEFAULT_PHOTOS, PHOTO_NAMES, PhotoPool
from bench.errors import ConfigError, did_you_mean

#: Bump when the pixels a (spec, id) yields change (photos, crops, generators, domains): cached
#: features of synthetic images key on it (see :meth:`Source.item_keys`).
GENERATOR_VERSION = "1"
SPLITS = ("train", "val", "test")
LABEL_DIRS = {0: "0_real", 1: "1_fake"}
_DEFAULT_N = {"train": 500, "val": 150, "test": 150}


def subset_names() -> list[str]:
    """The generator names; append ``@<domain>`` (e.g. ``@jpeg75``) for post-processed variants."""
    return list(GENERATORS)


def parse_subset(subset: str) -> tuple[str, str, list[tuple[str, float]]]:
    """Split ``"gen@domain"`` into ``(generator, domain_text, ops)``; ConfigError if either is unknown."""
    generator, _, domain = subset.partition("@")
    get_generator(generator)
    return generator, domain, parse_domain(domain) if domain else []


def _rng(*parts: Any) -> np.random.Generator:
    # crc32 rather than hash(): Python salts str hashes per process, and every DataLoader worker
    # and distributed process must draw the same image for the same id.
    words = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(words))


class SyntheticSource(Source):
    """Real photo crops and generated fakes with known traces, deterministic in (spec, id).

    Spec keys: ``image_size`` (pixels, default 64), ``n_per_class`` (split -> number of real and
    of fake images per subset, or one number for every split), ``seed`` (the data seed,
    independent of the training seed) and ``photos`` (split -> photo names; splits not given
    keep the default, and splits must not share a photo).
    """

    type_name = "synthetic"
    has_files = False
    version = GENERATOR_VERSION
    spec_keys: ClassVar[dict[str, Any]] = {
        "image_size": 64,
        "n_per_class": dict(_DEFAULT_N),
        "seed": 0,
        "photos": None,
    }

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None = None):
        super().__init__(name, spec, data_root)
        size = self.spec["image_size"]
        if not isinstance(size, int) or not 16 <= size <= 512:
            raise ConfigError(f"Source {name!r}: image_size must be an integer from 16 to 512, not {size!r}.")
        if not isinstance(self.spec["seed"], int) or self.spec["seed"] < 0:
            raise ConfigError(
                f"Source {name!r}: seed must be a non-negative integer, not {self.spec['seed']!r}."
            )
        self.n_per_class = self._split_map("n_per_class", self.spec["n_per_class"], _DEFAULT_N)
        for split, n in self.n_per_class.items():
            if not isinstance(n, int) or n < 1:
                raise ConfigError(
                    f"Source {name!r}: n_per_class[{split!r}] must be a positive integer, not {n!r}."
                )
        self.photos = self._split_map("photos", self.spec["photos"] or {}, DEFAULT_PHOTOS)
        self._check_photos()

    # -- spec validation ------------------------------------------------------------------------
    def _split_map(self, key: str, value: Any, default: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(value, int) and key == "n_per_class":
            return {split: value for split in SPLITS}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"Source {self.name!r}: {key} must be a mapping from split to value, not {value!r}."
            )
        for split in value:
            self._check_split(split)
        return {split: value.get(split, default[split]) for split in SPLITS}

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(
                f"Source {self.name!r} (synthetic) has no split {split!r};"
                f"{did_you_mean(split, SPLITS) or ''} use one of {', '.join(SPLITS)}."
            )

    def _check_photos(self) -> None:
        seen: dict[str, str] = {}
        for split, names in self.photos.items():
            if isinstance(names, str) or not names:
                raise ConfigError(
                    f"Source {self.name!r}: photos[{split!r}] must be a non-empty list of names."
                )
            for photo in names:
                if photo not in PHOTO_NAMES:
                    raise ConfigError(
                        f"Source {self.name!r}: unknown photo {photo!r} in photos[{split!r}];"
                        f"{did_you_mean(photo, PHOTO_NAMES) or ''} choose from {', '.join(PHOTO_NAMES)}."
                    )
                if seen.get(photo, split) != split:
                    raise ConfigError(
                        f"Source {self.name!r}: photo {photo!r} is in both {seen[photo]!r} and {split!r}; "
                        "splits must use disjoint photos, so remove it from one of them."
                    )
                seen[photo] = split

    # -- contract -------------------------------------------------------------------------------
    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """The table of ``split``: n real + n fake images per subset (all clean generators by default)."""
        self._check_split(split)
        n = self.n_per_class[split]
        rows = []
        for subset in dict.fromkeys(subsets if subsets is not None else subset_names()):
            parse_subset(subset)
            for label in (0, 1):
                for index in range(n):
                    item_id = f"{split}/{subset}/{label}/{index:06d}"
                    rows.append(
                        {"id": item_id, "label": label, "split": split, "subset": subset, "group": item_id}
                    )
        return make_table(rows)

    def load(self, item_id: str) -> Image.Image:
        """Generate the image of ``item_id`` (``split/subset/label/index``); the same id gives the same pixels."""
        return Image.fromarray(self.render(item_id))

    def render(self, item_id: str, generate: bool = True) -> np.ndarray:
        """The uint8 HxWx3 array of ``item_id``; :meth:`load` wraps it in a PIL image.

        With ``generate=False`` a fake is returned as the crop it starts from (domain applied),
        which is what its generator changed.
        """
        parts = item_id.split("/")
        if len(parts) != 4 or parts[2] not in ("0", "1") or not parts[3].isdigit():
            raise ConfigError(
                f"Synthetic id {item_id!r} is malformed; ids look like 'test/blend_ellipse@jpeg75/1/000123'."
            )
        split, subset, label, index = parts[0], parts[1], int(parts[2]), int(parts[3])
        self._check_split(split)
        generator, domain, ops = parse_subset(subset)
        size = self.spec["image_size"]
        seed = self.spec["seed"]
        # A resize domain means the image was made at another size and resized to image_size
        # afterwards, so traces are attenuated (downscaling) or smeared (upscaling).
        pool = PhotoPool(self.photos[split], max(16, round(size / domain_scale(ops))))
        img, photo = pool.crop(_rng(seed, split, LABEL_DIRS[label], index))
        if label == 1 and generate:
            rng = _rng(seed, split, generator, index)
            img = get_generator(generator)(img, rng, lambda: pool.crop(rng, exclude=photo)[0])
        if ops:
            img = apply_domain(img, ops, size, _rng(seed, split, domain, label, index))
        return to_uint8(img)


def write_folder(
    source: SyntheticSource,
    out_dir: str | Path,
    splits: Iterable[str] | None = None,
    subsets_by_split: Mapping[str, list[str]] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> int:
    """Write the images as PNGs in ``out_dir/<split>/<subset>/{0_real,1_fake}/<index>.png``.

    ``splits`` defaults to the keys of ``subsets_by_split`` or else all three splits;
    ``subsets_by_split`` maps a split to its subsets (default: every generator, no domain).
    ``progress`` wraps the iterator of rows (e.g. ``tqdm``). Returns the number of files written;
    the folder source reads the tree back with layout ``{split}/{subset}/{label}``.
    """
    subsets_by_split = dict(subsets_by_split or {})
    splits = list(splits) if splits is not None else (list(subsets_by_split) or list(SPLITS))
    tables = [source.select(split, subsets_by_split.get(split)) for split in splits]
    table = pd.concat(tables, ignore_index=True)
    rows: Iterable = table.itertuples(index=False)
    if progress is not None:
        rows = progress(rows)
    out_dir = Path(out_dir)
    made: set[Path] = set()
    for row in rows:
        split, subset, label, index = row.id.split("/")
        folder = out_dir / split / subset / LABEL_DIRS[int(label)]
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        Image.fromarray(source.render(row.id)).save(folder / f"{index}.png")
    return len(table)
