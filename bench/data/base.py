"""The data-source contract shared by every source type.

A source turns a spec (a mapping from a protocol or ``protocols/sources.yaml``) and a data root
into *tables*: one ``pandas.DataFrame`` per requested split with the columns of
:data:`TABLE_COLUMNS`. Images are decoded on demand (:meth:`Source.load`, or
:meth:`Source.load_with_info` which also says what conversion the file needed) by the rules of
:mod:`bench.data.decode`. Sources never see a detector: the runner applies the detector's
transform to what a source returns.

Paths in a spec (``root``, ``path``) are relative to the data root and may not leave it (no
absolute path, no ``..``) unless the spec sets ``allow_outside_root: true``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from PIL import Image

from bench.data.decode import (
    CONVERSIONS,
    DECODE_VERSION,
    MAX_IMAGE_PIXELS,
    check_header,
    decode_bytes,
    decode_file,
    open_image,
    to_rgb,
    to_rgb_info,
)
from bench.errors import ConfigError, DataError, ImageError
from bench.inputs import inside, os_path_problem

if TYPE_CHECKING:  # torch is imported only where tensors are made
    from torch import Tensor

#: Columns every table has. ``id`` is the source-relative identifier load() accepts (a relative path
#: for file sources), ``label`` 0 = real / 1 = fake, ``subset`` the generator or sub-dataset name,
#: ``group`` the video id for frame datasets (equal to ``id`` for still images).
TABLE_COLUMNS = ["id", "label", "split", "subset", "group"]
#: Spec keys every source accepts besides its own ``spec_keys``.
COMMON_KEYS: dict[str, Any] = {"allow_outside_root": False}


class PathEscapeError(ConfigError):
    """A spec path (``root``, ``path``) that leaves the data root without ``allow_outside_root: true``."""


class Source:
    """Base class of data-source types (``folder``, ``manifest``, ``hf``, ``synthetic``, plugins).

    Subclasses set ``type_name``, declare their spec keys in ``spec_keys`` (key -> default; a key
    whose default is ``...`` is required) and implement :meth:`select`. A source with files
    implements :meth:`file_root` (ids are paths below it) and inherits decoding, cheap checks and
    item keys; a source without files implements :meth:`load`.
    """

    type_name: ClassVar[str] = ""
    spec_keys: ClassVar[dict[str, Any]] = {}
    #: Spec keys that hold paths relative to the data root (checked not to leave it).
    path_keys: ClassVar[tuple[str, ...]] = ()
    #: False for sources that synthesise images in memory (no files to verify).
    has_files: ClassVar[bool] = True
    #: For sources without files: bump when the images a spec yields change (part of :meth:`item_keys`).
    version: ClassVar[str] = "1"

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        self.name = name
        self.data_root = Path(data_root) if data_root is not None else None
        self.spec = self._validate_spec(spec)
        #: Things worth recording about how this source read its data (e.g. video ids qualified by subset).
        self.notes: list[str] = []
        self._check_paths()

    # -- contract -------------------------------------------------------------------------------
    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Return the table of ``split`` (restricted to ``subsets`` when given), sorted and indexed 0..n-1."""
        raise NotImplementedError("subclasses implement select()")

    def load(self, item_id: str) -> Image.Image:
        """Return the RGB PIL image for one ``id`` of a table this source produced."""
        path = self.file_path(item_id)
        if path is None:
            raise NotImplementedError("sources without files implement load()")
        return decode_file(path)[0]

    def load_with_info(self, item_id: str) -> tuple[Image.Image, str]:
        """The RGB image of ``item_id`` and its conversion kind (a name in :data:`CONVERSIONS`)."""
        path = self.file_path(item_id)
        if path is not None:
            return decode_file(path)
        return to_rgb_info(self.load(item_id))

    def load_tensor(self, item_id: str) -> tuple[Tensor, str]:
        """The image of ``item_id`` as a uint8 ``[3, H, W]`` tensor and its conversion kind.

        Files are decoded by torchvision where it gives the same pixels, else by PIL (see
        :mod:`bench.data.tensor_decode`).
        """
        from bench.data.tensor_decode import decode_tensor_file

        path = self.file_path(item_id)
        if path is not None:
            return decode_tensor_file(path)
        from torchvision.transforms.functional import pil_to_tensor

        image, kind = self.load_with_info(item_id)
        return pil_to_tensor(image), kind

    def extras(self, item_id: str) -> dict[str, Any]:
        """Per-item data besides the image (e.g. face ``landmarks``); ``{}`` when the source has none."""
        return {}

    def file_root(self) -> Path | None:
        """The directory ids are paths below, for sources with files; None otherwise."""
        return None

    def file_path(self, item_id: str) -> Path | None:
        """The file behind ``item_id`` (None for sources without files)."""
        root = self.file_root()
        if root is None:
            return None
        if not self.spec.get("allow_outside_root") and not inside(item_id):
            raise DataError(f"Source {self.name!r}: id {item_id!r} is not a path inside {root}.")
        return root / item_id

    def ignored_files(self, split: str, subsets: list[str] | None = None) -> dict[str, list[str]]:
        """Files the source saw but left out of ``split``, by reason (e.g. an extension it does not read)."""
        return {}

    # -- identity and checks --------------------------------------------------------------------
    def item_keys(self, table: pd.DataFrame) -> list[str]:
        """One identity string per row of ``table`` for caches; cheap (one ``stat`` per file).

        Files: ``<path relative to the data root>|<size>|<mtime_ns>`` (``missing`` when absent);
        sources without files: type, :attr:`version`, a hash of the spec, and the id.
        """
        root = self.file_root()
        if root is None:
            text = json.dumps(self.spec, sort_keys=True, default=str)
            spec = hashlib.sha256(text.encode()).hexdigest()[:16]
            return [f"{self.type_name}|v{self.version}|{spec}|{item_id}" for item_id in table["id"]]
        return [key for key, _ in self._stat_keys(table, root)]

    def _stat_keys(self, table: pd.DataFrame, root: Path) -> list[tuple[str, os.stat_result | None]]:
        """``(<path below the data root>|<size>|<mtime_ns>, stat)`` per row, ``(<path>|missing, None)`` if absent."""
        prefix = os.path.relpath(root, self.data_root) if self.data_root is not None else str(root)
        prefix = "" if prefix == os.curdir else PurePosixPath(*Path(prefix).parts).as_posix() + "/"
        keys = []
        for item_id in table["id"]:
            name = item_id if Path(item_id).is_absolute() else prefix + item_id
            try:
                st = os.stat(os.path.join(root, item_id))
                keys.append((f"{name}|{st.st_size}|{st.st_mtime_ns}", st))
            except (OSError, ValueError):  # ValueError: a NUL byte, refused by the pre-run check
                keys.append((f"{name}|missing", None))
        return keys

    def item_identities(self, table: pd.DataFrame) -> list[tuple[str, str]]:
        """``(identity, content key)`` per row, one ``stat`` per file.

        The identity says which image a row is, whatever path reached it (``file:<device>:<inode>``
        for files, so two sources or links over one file agree; the :meth:`item_keys` key for sources
        without files); the content key changes when the file does (path below the data root, size,
        modification time). A file that cannot be read gets ``missing:<path>`` (the pre-run check
        reports it).
        """
        root = self.file_root()
        if root is None:
            return [(key, key) for key in self.item_keys(table)]
        return [(f"file:{st.st_dev}:{st.st_ino}" if st is not None else f"missing:{self.name}:{item_id}", key)
                for item_id, (key, st) in zip(table["id"], self._stat_keys(table, root))]

    def check_cheap(self, table: pd.DataFrame) -> list[tuple[str, str]]:
        """``(id, reason)`` for files missing, empty, not files, too large, without a readable header, with a
        path the OS cannot take, or resolving outside the data root (see :mod:`bench.data.cheap_check`).

        No pixel is decoded (PIL reads the header only), so this is fast enough to run before every
        run; :meth:`find_bad_images` decodes everything. Sources without files return ``[]``.
        """
        from bench.data.cheap_check import check_files_cheaply

        root = self.file_root()
        return [] if root is None else check_files_cheaply(self, table, root)

    def find_bad_images(self, table: pd.DataFrame) -> list[tuple[str, str]]:
        """Decode every image of ``table``; return ``(id, reason)`` for each one that fails."""
        if not self.has_files:
            return []
        bad = []
        for item_id in table["id"]:
            try:
                self.load_with_info(item_id)
            except ImageError as err:
                bad.append((item_id, str(err)))
        return bad

    @staticmethod
    def fingerprint(table: pd.DataFrame) -> str:
        """A cheap content-list hash: sha256 of the sorted (id, label) pairs."""
        h = hashlib.sha256()
        for item_id, label in sorted(zip(table["id"].astype(str), table["label"].astype(int))):
            h.update(f"{item_id}\t{label}\n".encode())
        return "sha256:" + h.hexdigest()

    # -- shared helpers -------------------------------------------------------------------------
    def _where(self) -> str:
        return f"Source {self.name!r} (type {self.type_name})"

    def _validate_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        spec = dict(spec)
        spec.pop("type", None)
        allowed = {**COMMON_KEYS, **self.spec_keys}
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            from bench.errors import did_you_mean

            key = unknown[0]
            raise ConfigError(
                f"Source {self.name!r} (type {self.type_name}) has unknown key {key!r};"
                f"{did_you_mean(key, allowed) or ''} allowed keys: {', '.join(sorted(allowed))}."
            )
        out = {}
        for key, default in allowed.items():
            if key in spec:
                out[key] = spec[key]
            elif default is ...:
                raise ConfigError(f"Source {self.name!r} (type {self.type_name}) needs the key {key!r}.")
            else:
                out[key] = default
        if not isinstance(out["allow_outside_root"], bool):
            raise ConfigError(f"{self._where()}: allow_outside_root must be true or false, "
                              f"not {out['allow_outside_root']!r}.")
        return out

    def _check_paths(self) -> None:
        """Refuse spec paths that leave the data root, naming the key, unless the spec allows it."""
        for key in self.path_keys:
            value = self.spec.get(key)
            problem = os_path_problem(value) if isinstance(value, str) else None
            if problem:
                raise ConfigError(f"{self._where()} has {key} {value[:100]!r}, which {problem}; fix the path.")
            if self.spec["allow_outside_root"]:
                continue
            if isinstance(value, str) and value not in ("", ".") and not inside(value):
                raise PathEscapeError(
                    f"{self._where()} has {key} {value!r}, which leaves the data root; use a path relative "
                    "to the data root without '..', or set allow_outside_root: true in the source to read it "
                    "there."
                )

    def resolve(self, relative: str | Path) -> Path:
        """Resolve a path relative to the data root, with a clear error when no root is set."""
        if self.spec["allow_outside_root"] and Path(relative).is_absolute():
            return Path(relative)
        if self.data_root is None:
            raise DataError(
                f"Source {self.name!r} reads files but no data root is set; pass --data-root DIR "
                "or set BENCH_DATA_ROOT."
            )
        return self.data_root / relative


def make_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a table with the standard columns, sorted by id for a deterministic order."""
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["label"] = table["label"].astype(int)
    return table.sort_values("id", kind="stable").reset_index(drop=True)


__all__ = [
    "CONVERSIONS", "DECODE_VERSION", "MAX_IMAGE_PIXELS", "TABLE_COLUMNS", "PathEscapeError", "Source",
    "check_header", "decode_bytes", "decode_file", "inside", "make_table", "open_image", "to_rgb",
    "to_rgb_info",
]
