"""The ``manifest`` source: a CSV (or JSON Lines) file listing every image with its label and split."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pandas as pd
from PIL import Image

from bench.data.base import Source, make_table, open_image
from bench.errors import DataError

REQUIRED_COLUMNS = ["path", "label", "split"]
OPTIONAL_COLUMNS = ["subset", "group"]
_LABELS = {"0": 0, "1": 1, "real": 0, "fake": 1}


def parse_label(value: Any) -> int | None:
    """Map 0/1/'real'/'fake' (any case, int or text) to 0/1; None for anything else (booleans too)."""
    return None if isinstance(value, bool) else _LABELS.get(str(value).strip().lower())


def inside(relative: str) -> bool:
    """True when ``relative`` is a relative path that cannot leave its root (no ``..``, no drive)."""
    rel = PurePosixPath(relative.replace("\\", "/"))
    return bool(relative) and not rel.is_absolute() and ".." not in rel.parts and relative[1:2] != ":"


def only_subsets(where: str, table: pd.DataFrame, split: str, subsets: list[str] | None) -> pd.DataFrame:
    """Keep the rows of ``subsets`` (all when None); a subset the split lacks is an error listing those it has."""
    if subsets is None:
        return table
    present = sorted(table["subset"].unique())
    unknown = [s for s in subsets if s not in present]
    if unknown:
        raise DataError(
            f"{where} has no subset {unknown[0]!r} in split {split!r}; it has: {', '.join(present)}."
        )
    return table[table["subset"].isin(subsets)].reset_index(drop=True)


def missing_path(where: str, what: str, path: Path, relative: str) -> DataError:
    """The error for a source whose files are not under the data root."""
    return DataError(
        f"{where} looked for its {what} at {path}, which does not exist; point --data-root "
        f"(or BENCH_DATA_ROOT) at the directory that contains {relative!r}."
    )


class ManifestSource(Source):
    """Images listed in a manifest with columns ``path,label,split[,subset,group]``.

    Spec keys: ``path`` (the manifest, relative to the data root; ``.jsonl`` is read as JSON Lines,
    anything else as CSV) and ``root`` (the directory image paths are relative to, itself relative
    to the data root; default the manifest's directory). Labels are 0/1 or real/fake (any case).
    A missing or empty ``subset`` is the source name; a missing or empty ``group`` (the video id
    for frame datasets) is the path. Ids are the manifest paths, normalised to ``/`` separators.
    """

    type_name = "manifest"
    spec_keys: ClassVar[dict[str, Any]] = {"path": ..., "root": None}

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        super().__init__(name, spec, data_root)
        self._table: pd.DataFrame | None = None

    def _where(self) -> str:
        return f"Source {self.name!r} (type manifest)"

    def _manifest_path(self) -> Path:
        path = self.resolve(self.spec["path"])
        if not path.is_file():
            raise missing_path(self._where(), "manifest", path, self.spec["path"])
        return path

    def image_root(self) -> Path:
        """The directory the manifest's image paths are relative to."""
        if self.spec["root"] is not None:
            return self.resolve(self.spec["root"])
        return self.resolve(self.spec["path"]).parent

    def _read(self) -> pd.DataFrame:
        path = self._manifest_path()
        try:
            if path.suffix.lower() == ".jsonl":
                raw = pd.read_json(path, lines=True, dtype=False)
                raw = raw.astype(object).where(raw.notna(), "").astype(str)
            else:
                raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (ValueError, pd.errors.ParserError) as err:
            raise DataError(f"{self._where()}: {path} cannot be parsed ({err}).") from err
        raw.columns = [str(c).strip() for c in raw.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
        if missing:
            raise DataError(
                f"{self._where()}: {path} lacks the column(s) {', '.join(missing)}; it has "
                f"{', '.join(raw.columns) or 'none'} (expected path,label,split[,subset,group])."
            )
        for column in OPTIONAL_COLUMNS:
            if column not in raw.columns:
                raw[column] = ""
        return self._validate(raw, path)

    def _validate(self, raw: pd.DataFrame, path: Path) -> pd.DataFrame:
        rows, seen = [], {}
        # Row numbers are 1-based data rows; the CSV line is one more because of the header.
        for number, rec in enumerate(
            raw[REQUIRED_COLUMNS + OPTIONAL_COLUMNS].itertuples(index=False), start=1
        ):
            where = f"{self._where()}: row {number} of {path}"
            item, label_text, split, subset, group = (str(v).strip() for v in rec)
            label = parse_label(label_text)
            if label is None:
                raise DataError(f"{where} has label {label_text!r}; use 0/1 or real/fake.")
            if not item:
                raise DataError(f"{where} has an empty path.")
            if not inside(item):
                raise DataError(
                    f"{where} has path {item!r}, which leaves the image root; paths must be relative "
                    "to the root without '..' (set the source's 'root' key to a directory above them)."
                )
            if not split:
                raise DataError(f"{where} has an empty split.")
            item = PurePosixPath(item.replace("\\", "/")).as_posix()
            if item in seen:
                raise DataError(
                    f"{where} repeats path {item!r} from row {seen[item]}; each image is listed once."
                )
            seen[item] = number
            rows.append(
                {
                    "id": item,
                    "label": label,
                    "split": split,
                    "subset": subset or self.name,
                    "group": group or item,
                }
            )
        if not rows:
            raise DataError(f"{self._where()}: {path} lists no images.")
        return make_table(rows)

    @property
    def table(self) -> pd.DataFrame:
        """The whole validated manifest (all splits), read once."""
        if self._table is None:
            self._table = self._read()
        return self._table

    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Return the rows of ``split``, limited to ``subsets`` when given."""
        table = self.table
        splits = sorted(table["split"].unique())
        if split not in splits:
            raise DataError(
                f"{self._where()} has no split {split!r} in {self._manifest_path()}; it has: {', '.join(splits)}."
            )
        return only_subsets(
            self._where(), table[table["split"] == split].reset_index(drop=True), split, subsets
        )

    def load(self, item_id: str) -> Image.Image:
        """Decode the image at ``root/item_id`` as RGB (raises ImageError when it cannot be decoded)."""
        if not inside(item_id):
            raise DataError(f"{self._where()}: id {item_id!r} is not a path inside the image root.")
        return open_image(self.image_root() / item_id)
