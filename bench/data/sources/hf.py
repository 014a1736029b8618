"""The ``hf`` source: a Hugging Face ``datasets`` dataset (saved to disk, an image folder, or cached)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from PIL import Image

from bench.data.base import Source, check_header, decode_bytes, decode_file, make_table
from bench.data.sources.manifest import missing_path, only_subsets, parse_label
from bench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch import Tensor

LOADERS = ("disk", "imagefolder", "parquet", "hub")
#: Our split names that need no ``split_map`` when the dataset uses Hugging Face's usual name.
HF_SPLIT_NAMES = {"val": "validation"}
#: Files ``save_to_disk`` writes (DatasetDict, Dataset): their presence means ``load_from_disk``.
_SAVED_MARKERS = ("dataset_dict.json", "state.json")
#: Likely labels of common class names, only to write an example label_map in an error message.
_GUESS = {
    **dict.fromkeys(("1", "fake", "1_fake", "ai", "synthetic", "generated", "manipulated"), "1"),
    **dict.fromkeys(("0", "real", "0_real", "nature", "natural", "authentic", "pristine"), "0"),
}


class HFSource(Source):
    """Rows of a Hugging Face dataset; ids are ``<split>/<row index>``.

    Spec keys: ``path`` (required: a directory written by ``save_to_disk``, a directory of parquet
    files (read with the ``parquet`` builder; splits from file names such as
    ``test-00000-of-00001.parquet``, else everything is ``train``), a directory of images read with
    the ``imagefolder`` builder, all relative to the data root, or a dataset id already in the local
    Hugging Face cache); ``loader`` (``disk``, ``parquet``, ``imagefolder`` or ``hub``; default
    chosen from what ``path`` holds); ``name`` (hub configuration name); ``image_column`` (an
    Image column, or encoded bytes) and ``label_column``; ``label_map`` (class name or value ->
    0/1, required unless the labels are already 0/1 integers); ``split_map`` (our split name ->
    dataset split name; ``val`` finds ``validation`` without it); ``subset_column`` and
    ``group_column`` (optional). A saved single ``Dataset`` without splits is the split ``test``.
    A dataset that cannot be loaded is one :class:`DataError` naming the path and the loader.
    """

    type_name = "hf"
    path_keys = ("path",)
    spec_keys: ClassVar[dict[str, Any]] = {
        "path": ...,
        "loader": None,
        "name": None,
        "image_column": "image",
        "label_column": "label",
        "label_map": None,
        "split_map": {},
        "subset_column": None,
        "group_column": None,
    }

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        super().__init__(name, spec, data_root)
        if self.spec["loader"] not in (None, *LOADERS):
            raise ConfigError(
                f"{self._where()} has loader {self.spec['loader']!r}; use one of {', '.join(LOADERS)}."
            )
        self._splits: dict[str, Any] | None = None
        self._images: dict[str, Any] = {}

    def _where(self) -> str:
        return f"Source {self.name!r} (type hf)"

    # -- opening --------------------------------------------------------------------------------
    def _local_path(self) -> Path | None:
        loader = self.spec["loader"]
        if loader == "hub":
            return None
        if self.data_root is None and loader is None and not Path(self.spec["path"]).is_absolute():
            return None
        path = self.resolve(self.spec["path"])  # an explicit local loader without a data root: a clear error
        if loader in ("disk", "imagefolder", "parquet") and not path.is_dir():
            raise missing_path(self._where(), "dataset", path, self.spec["path"])
        return path if path.is_dir() else None

    def _loader(self, path: Path | None) -> str:
        if self.spec["loader"] is not None:
            return self.spec["loader"]
        if path is None:
            return "hub"
        if any((path / f).is_file() for f in _SAVED_MARKERS):
            return "disk"
        return "parquet" if next(path.rglob("*.parquet"), None) is not None else "imagefolder"

    def _open(self) -> dict[str, Any]:
        """Load the dataset once; return HF split name -> ``datasets.Dataset``."""
        if self._splits is not None:
            return self._splits
        # Lazy import: `datasets` is slow to import and only this source needs it.
        import datasets

        path = self._local_path()
        loader = self._loader(path)
        try:
            if loader == "disk":
                loaded = datasets.load_from_disk(str(path))
            elif loader in ("imagefolder", "parquet"):
                loaded = datasets.load_dataset(loader, data_dir=str(path))
            else:
                loaded = datasets.load_dataset(self.spec["path"], self.spec["name"])
        except Exception as err:  # datasets raises many types; each means "this path is not loadable so"
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            if loader == "hub":
                raise DataError(
                    f"{self._where()}: dataset {self.spec['path']!r} is neither a directory under the data "
                    f"root nor loadable from the local Hugging Face cache ({type(err).__name__}: {first}); "
                    "download it once with datasets.load_dataset(...).save_to_disk(DIR) and set 'path' to DIR."
                ) from err
            raise DataError(
                f"{self._where()}: {path} cannot be loaded with the {loader!r} loader ({type(err).__name__}: "
                f"{first}); check that it holds a dataset of that kind, or set 'loader' to one of "
                f"{', '.join(LOADERS)}."
            ) from err
        self._splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"test": loaded}
        return self._splits

    def _split(self, split: str) -> tuple[str, Any]:
        splits = self._open()
        hf_split = dict(self.spec["split_map"]).get(split, split)
        if hf_split not in splits and hf_split == split and HF_SPLIT_NAMES.get(split) in splits:
            hf_split = HF_SPLIT_NAMES[split]
        if hf_split not in splits:
            raise DataError(
                f"{self._where()} has no split {hf_split!r} (asked for {split!r}); the dataset has: "
                f"{', '.join(splits)} (map names with the source's 'split_map' key)."
            )
        ds = splits[hf_split]
        for key in ("image_column", "label_column", "subset_column", "group_column"):
            column = self.spec[key]
            if column is not None and column not in ds.column_names:
                raise ConfigError(
                    f"{self._where()}: '{key}' is {column!r} but split {hf_split!r} has columns "
                    f"{', '.join(ds.column_names)}."
                )
        return hf_split, ds

    # -- labels ---------------------------------------------------------------------------------
    def _label_fn(self, ds: Any, values: pd.Series):
        """Return a function mapping a raw label value to 0/1, refusing to guess an order."""
        import datasets

        column = self.spec["label_column"]
        feature = ds.features[column]
        names = feature.names if isinstance(feature, datasets.ClassLabel) else None
        label_map = self.spec["label_map"]
        if label_map is None:
            if names is not None or not set(values.unique()) <= {0, 1}:
                shown = names if names is not None else sorted(map(str, values.unique()))[:10]
                guess = ", ".join(f"{n}: {_GUESS.get(str(n).lower(), '0 or 1')}" for n in shown)
                kind = "class names" if names is not None else "values"
                raise ConfigError(
                    f"{self._where()}: label column {column!r} has {kind} {shown}; their order says nothing "
                    f"about real/fake, so add a label_map, e.g. label_map: {{{guess}}}."
                )
            return int
        mapping = {str(key): parse_label(value) for key, value in dict(label_map).items()}
        if None in mapping.values():
            raise ConfigError(f"{self._where()}: label_map values must be 0 (real) or 1 (fake): {mapping}.")
        if names is not None and (values < 0).any():
            raise DataError(f"{self._where()}: label column {column!r} has rows without a label (-1).")
        raw = [names[int(v)] if names is not None else str(v) for v in values.unique()]
        unmapped = sorted({r for r in raw if r not in mapping})
        if unmapped:
            raise ConfigError(f"{self._where()}: label_map has no entry for {', '.join(unmapped)}; add them.")
        if names is not None:
            return lambda v: mapping[names[int(v)]]
        return lambda v: mapping[str(v)]

    # -- contract -------------------------------------------------------------------------------
    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Return the rows of ``split`` (mapped through ``split_map``), limited to ``subsets``."""
        _, ds = self._split(split)
        wanted = [self.spec[k] for k in ("label_column", "subset_column", "group_column") if self.spec[k]]
        # Only the small columns: reading the image column would decode every image.
        meta = ds.select_columns(list(dict.fromkeys(wanted))).to_pandas()
        to_label = self._label_fn(ds, meta[self.spec["label_column"]])
        ids = [f"{split}/{i}" for i in range(len(meta))]
        subset, group = self.spec["subset_column"], self.spec["group_column"]
        table = pd.DataFrame(
            {
                "id": ids,
                "label": meta[self.spec["label_column"]].map(to_label),
                "split": split,
                "subset": meta[subset].astype(str) if subset else self.name,
                "group": meta[group].astype(str) if group else ids,
            }
        )
        return make_table(only_subsets(self._where(), table, split, subsets).to_dict("records"))

    def _encoded(self, item_id: str) -> tuple[bytes | None, Path | None, str]:
        """(bytes, path, name for errors) of the image of row ``<split>/<index>``."""
        import datasets

        split, _, index = item_id.rpartition("/")
        if split not in self._images:
            _, ds = self._split(split)
            column = self.spec["image_column"]
            feature = ds.features[column]
            # decode=False hands us bytes or a path, so a broken file becomes our ImageError.
            images = ds.select_columns([column])
            try:
                images = images.cast_column(column, datasets.Image(decode=False))
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"{self._where()}: column {column!r} is {feature}, which holds neither images nor "
                    "encoded image bytes; set 'image_column' to the column with the images."
                ) from err
            self._images[split] = images
        images = self._images[split]
        if not index.isdigit() or int(index) >= len(images):
            raise DataError(f"{self._where()}: id {item_id!r} is not a row of split {split!r}.")
        value = images[int(index)][self.spec["image_column"]] or {}
        if value.get("bytes") is None and value.get("path"):
            return None, Path(value["path"]), value["path"]
        return value.get("bytes") or b"", None, f"Row {item_id} of source {self.name!r}"

    def load(self, item_id: str) -> Image.Image:
        """Decode the image of row ``<split>/<index>`` as RGB (raises ImageError when it cannot be decoded)."""
        return self.load_with_info(item_id)[0]

    def load_with_info(self, item_id: str) -> tuple[Image.Image, str]:
        """The RGB image of row ``<split>/<index>`` and its conversion kind."""
        data, path, where = self._encoded(item_id)
        return decode_file(path) if path is not None else decode_bytes(data, where)

    def load_tensor(self, item_id: str) -> tuple[Tensor, str]:
        """The image of row ``<split>/<index>`` as a uint8 ``[3, H, W]`` tensor and its conversion kind."""
        from bench.data.tensor_decode import decode_tensor, decode_tensor_file

        data, path, where = self._encoded(item_id)
        return decode_tensor_file(path) if path is not None else decode_tensor(bytearray(data), where)

    def check_cheap(self, table: pd.DataFrame) -> list[tuple[str, str]]:
        """``(id, reason)`` for rows without image bytes or without a readable header (nothing decoded)."""
        bad = []
        for item_id in table["id"]:
            data, path, where = self._encoded(item_id)
            if path is None and not data:
                bad.append((item_id, f"{where} is empty (zero bytes)"))
            elif reason := check_header(path if path is not None else io.BytesIO(data), where):
                bad.append((item_id, reason))
        return bad

    def item_keys(self, table: pd.DataFrame) -> list[str]:
        """``hf|<dataset fingerprint>|<dataset split>|<row>`` per row (the fingerprint follows the data)."""
        keys, fingerprints = [], {}
        for item_id in table["id"]:
            split, _, index = item_id.rpartition("/")
            if split not in fingerprints:
                hf_split, ds = self._split(split)
                fingerprints[split] = f"{ds._fingerprint}|{hf_split}"
            keys.append(f"hf|{fingerprints[split]}|{index}")
        return keys
