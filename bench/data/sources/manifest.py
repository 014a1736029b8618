"""The ``manifest`` source: a CSV (or JSON Lines) file listing every image with its label and split."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bench.data.base import Source, make_table
from bench.errors import DataError, ImageError
from bench.inputs import inside, os_path_problem

REQUIRED_COLUMNS = ["path", "label", "split"]
OPTIONAL_COLUMNS = ["subset", "group", "landmarks"]
_LABELS = {"0": 0, "1": 1, "real": 0, "fake": 1}


def parse_label(value: Any) -> int | None:
    """Map 0/1/'real'/'fake' (any case, int or text) to 0/1; None for anything else (booleans too)."""
    return None if isinstance(value, bool) else _LABELS.get(str(value).strip().lower())


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
    """Images listed in a manifest with columns ``path,label,split[,subset,group,landmarks]``.

    Spec keys: ``path`` (the manifest, relative to the data root; ``.jsonl`` is read as JSON Lines,
    anything else as CSV) and ``root`` (the directory image paths are relative to, itself relative
    to the data root; default the manifest's directory). Labels are 0/1 or real/fake (any case).
    A missing or empty ``subset`` is the source name; a missing or empty ``group`` (the video id
    for frame datasets) is the path. Ids are the manifest paths, normalised to ``/`` separators.

    Video ids must be unique across subsets: when one ``group`` value appears in two subsets (a
    hand-made manifest with bare names like ``000.mp4``), every group is qualified by its subset
    (``<subset>/<group>``) and a note says so; a video with both real and fake frames is refused.
    The optional ``landmarks`` column is the path (relative to the image root, like ``path``) of a
    ``.npy`` file with a ``[K, 2]`` array of face landmarks (DeepfakeBench's ``landmarks/.../000.npy``);
    :meth:`extras` returns it as ``{"landmarks": float32 array}``, or ``{}`` where the cell is empty.
    """

    type_name = "manifest"
    path_keys = ("path", "root")
    spec_keys: ClassVar[dict[str, Any]] = {"path": ..., "root": None}

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        super().__init__(name, spec, data_root)
        self._table: pd.DataFrame | None = None
        self._landmarks: dict[str, str] = {}

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

    def file_root(self) -> Path:
        """The image root (ids are paths below it)."""
        return self.image_root()

    def _read(self) -> pd.DataFrame:
        path = self._manifest_path()
        try:
            if path.suffix.lower() == ".jsonl":
                raw = pd.read_json(path, lines=True, dtype=False)
                raw = raw.astype(object).where(raw.notna(), "").astype(str)
            else:
                raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (ValueError, pd.errors.ParserError) as err:
            raise DataError(f"{self._where()}: {path} cannot be parsed ({err}).") from None
        except OSError as err:
            raise DataError(f"{self._where()}: {path} cannot be read ({err.strerror or err}); check its "
                            "permissions.") from None
        raw.columns = [str(c).strip() for c in raw.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
        if missing:
            raise DataError(
                f"{self._where()}: {path} lacks the column(s) {', '.join(missing)}; it has "
                f"{', '.join(raw.columns) or 'none'} (expected path,label,split[,subset,group,landmarks])."
            )
        for column in OPTIONAL_COLUMNS:
            if column not in raw.columns:
                raw[column] = ""
        return self._videos(self._validate(raw, path), path)

    def _checked_path(self, where: str, column: str, value: str) -> str:
        problem = os_path_problem(value)
        if problem:
            raise DataError(f"{where} has a {column} that {problem} ({value[:80]!r}); the file system cannot open "
                            "it, so fix that row.")
        if not self.spec["allow_outside_root"] and not inside(value):
            raise DataError(
                f"{where} has {column} {value!r}, which leaves the image root; paths must be relative to the "
                "root without '..' (set the source's 'root' key to a directory above them, or "
                "allow_outside_root: true to read them there)."
            )
        return PurePosixPath(value.replace("\\", "/")).as_posix()

    def _validate(self, raw: pd.DataFrame, path: Path) -> pd.DataFrame:
        rows, seen = [], {}
        # Row numbers are 1-based data rows; the CSV line is one more because of the header.
        for number, rec in enumerate(
            raw[REQUIRED_COLUMNS + OPTIONAL_COLUMNS].itertuples(index=False), start=1
        ):
            where = f"{self._where()}: row {number} of {path}"
            item, label_text, split, subset, group, landmarks = (str(v).strip() for v in rec)
            label = parse_label(label_text)
            if label is None:
                raise DataError(f"{where} has label {label_text!r}; use 0/1 or real/fake.")
            if not item:
                raise DataError(f"{where} has an empty path.")
            item = self._checked_path(where, "path", item)
            if not split:
                raise DataError(f"{where} has an empty split.")
            if item in seen:
                raise DataError(
                    f"{where} repeats path {item!r} from row {seen[item]}; each image is listed once."
                )
            seen[item] = number
            if landmarks:
                self._landmarks[item] = self._checked_path(where, "landmarks", landmarks)
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

    def _videos(self, table: pd.DataFrame, path: Path) -> pd.DataFrame:
        """Qualify video ids that repeat across subsets; refuse videos with both labels."""
        subsets = table.groupby("group")["subset"].nunique()
        shared = subsets[subsets > 1]
        if len(shared):
            example = str(shared.index[0])
            where = ", ".join(sorted(table.loc[table["group"] == example, "subset"].unique()))
            table["group"] = table["subset"] + "/" + table["group"]
            self.notes.append(
                f"{self._where()}: {len(shared)} video id(s) in {path} repeat across subsets (e.g. "
                f"{example!r} in {where}), so every video id was qualified by its subset "
                "('<subset>/<group>')."
            )
        labels = table.groupby("group")["label"].nunique()
        mixed = labels[labels > 1]
        if len(mixed):
            raise DataError(
                f"{self._where()}: {path} has {len(mixed)} video(s) with both real and fake frames "
                f"(e.g. group {str(mixed.index[0])!r}); every frame of a video carries the video's label, "
                "so fix the labels or the group column."
            )
        return table

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

    def extras(self, item_id: str) -> dict[str, Any]:
        """``{"landmarks": float32 [K, 2] array}`` when the row's ``landmarks`` cell is set, else ``{}``."""
        _ = self.table  # reading the manifest fills the landmarks map
        rel = self._landmarks.get(item_id)
        if rel is None:
            return {}
        path = self.image_root() / rel
        try:
            points = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ImageError(f"{path} (landmarks of {item_id}) cannot be read "
                             f"({type(err).__name__}: {err})") from err
        if points.ndim != 2 or points.shape[1] != 2 or not np.issubdtype(points.dtype, np.number):
            raise ImageError(f"{path} (landmarks of {item_id}) holds a {points.dtype} array of shape "
                             f"{points.shape}; expected numbers of shape [K, 2].")
        return {"landmarks": points.astype(np.float32)}
