"""The ``folder`` source: images in a directory tree whose layout encodes split, subset and label."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from bench.data.base import Source, make_table
from bench.data.sources.manifest import missing_path, parse_label
from bench.data.sources.walk import TreeWalk
from bench.errors import ConfigError, DataError
from bench.inputs import Confinement

#: Image formats PIL reads in every installation (animated ones give their first frame). The list is
#: fixed, not taken from PIL's plugins, so a tree lists the same files on every machine.
DEFAULT_EXTENSIONS = [".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".webp",
                      ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k"]
_FIELDS = ("split", "subset", "label")


class FolderSource(Source):
    """Images under ``root`` laid out as ``layout``, e.g. ``{split}/{subset}/{label}`` (CNNDetection).

    Spec keys: ``root`` (required, relative to the data root); ``layout`` (``/``-separated fields
    among ``{split}``, ``{subset}``, ``{label}``, label last); ``labels`` (label-directory name ->
    0/1); ``label`` (0/1/real/fake, or a mapping subset -> label, for layouts without ``{label}``);
    ``split`` (the one split name of a layout without ``{split}``, default ``test``); ``extensions``
    (default :data:`DEFAULT_EXTENSIONS`).

    Label directories may sit below class folders (``test/progan/<class>/0_real``): below the last
    layout field, directories are descended until one level holds label directories, and every
    image below a label directory gets that label. Without ``{label}``, every image below the last
    field belongs to it; an image below label directories of both classes is an error. Ids are paths
    relative to ``root``. Symbolic links are followed, but a link back into its own path, a file
    reached twice and a link leading outside the data root (unless ``allow_outside_root: true``,
    then recorded in the split's notes) are errors (:mod:`bench.data.sources.walk`). Entries left out
    (hidden, other extensions, files where the layout has directories, directories named like
    images) are counted by :meth:`ignored_files`.
    """

    type_name = "folder"
    path_keys = ("root",)
    spec_keys: ClassVar[dict[str, Any]] = {
        "root": ...,
        "layout": "{split}/{subset}/{label}",
        "labels": {"0_real": 0, "1_fake": 1},
        "label": None,
        "split": None,
        "extensions": DEFAULT_EXTENSIONS,
    }

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        super().__init__(name, spec, data_root)
        self.fields = self._parse_layout(self.spec["layout"])
        exts = self.spec["extensions"]
        self.extensions = {"." + e.lower().lstrip(".") for e in ([exts] if isinstance(exts, str) else exts)}
        self.labels = self._check_labels()
        self._cache: dict[tuple, tuple[pd.DataFrame, dict[str, list[str]]]] = {}

    # -- spec checks ----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"Source {self.name!r} (type folder)"

    def _parse_layout(self, layout: str) -> list[str]:
        parts = [p for p in str(layout).strip("/").split("/") if p]
        fields = [m.group(1) if (m := re.fullmatch(r"\{(\w+)\}", p)) else None for p in parts]
        if None in fields or not set(fields) <= set(_FIELDS) or len(set(fields)) != len(fields):
            raise ConfigError(
                f"{self._where()} has layout {layout!r}; use '/'-separated fields among {{split}}, "
                "{subset}, {label}, each at most once, e.g. '{split}/{subset}/{label}'."
            )
        if "label" in fields and fields[-1] != "label":
            raise ConfigError(f"{self._where()} has layout {layout!r}; {{label}} must be its last field.")
        if "split" in fields and self.spec["split"] is not None:
            raise ConfigError(f"{self._where()} sets 'split' but its layout has {{split}}; remove one.")
        return fields

    def _check_labels(self) -> dict[str, int]:
        if "label" in self.fields:
            if self.spec["label"] is not None:
                raise ConfigError(
                    f"{self._where()} sets 'label' but its layout has {{label}}; label directories "
                    "are named by 'labels' instead."
                )
            labels = {str(d): parse_label(v) for d, v in dict(self.spec["labels"]).items()}
            if None in labels.values():
                raise ConfigError(f"{self._where()}: 'labels' values must be 0 (real) or 1 (fake): {labels}.")
            return labels
        label = self.spec["label"]
        values = label.values() if isinstance(label, dict) else [label]
        if label is None or any(parse_label(v) is None for v in values):
            raise ConfigError(
                f"{self._where()} has no {{label}} in its layout, so it needs 'label': 0/1/real/fake for "
                f"the whole source or a mapping subset -> label (got {label!r})."
            )
        return {}

    # -- listing --------------------------------------------------------------------------------
    def _pick(self, walk: TreeWalk, path: Path, field: str, wanted: list[str] | None) -> list[str]:
        """The directory names at one layout level, checked against ``wanted``."""
        found = walk.subdirs(path, walk.chain(path))
        walk.note_outside_layout(path, field)
        if wanted is None:
            return found
        missing = [w for w in wanted if w not in found]
        if missing:
            raise DataError(
                f"{self._where()} has no {field} {missing[0]!r} in {path}; it has: {', '.join(found) or 'nothing'}."
            )
        return list(wanted)

    def _labelled(self, walk: TreeWalk, path: Path) -> list[tuple[Path, int]]:
        """Images below ``path`` with the label of the label directory above them."""
        chain = walk.chain(path)
        subdirs = walk.subdirs(path, chain)
        label_dirs = [d for d in subdirs if d in self.labels]
        if label_dirs:
            unknown = [d for d in subdirs if d not in self.labels]
            if unknown:
                raise DataError(
                    f"{self._where()}: directory {path / unknown[0]} sits beside label directories but "
                    f"is none of them ({', '.join(self.labels)}); add it to the source's 'labels' key."
                )
            walk.note_outside_layout(path, "label")
            return [(img, self.labels[d]) for d in label_dirs for img in walk.images(path / d)]
        stray = walk.stray_images(path)
        if stray or not subdirs:
            raise DataError(
                f"{self._where()}: {path / stray[0] if stray else path} is not below a label directory "
                f"({', '.join(self.labels)}); set the source's 'labels' key to the names used here."
            )
        walk.note_outside_layout(path, "class")
        return [item for d in subdirs for item in self._labelled(walk, path / d)]

    def _check_one_label(self, rel: str) -> None:
        """Refuse an image below label directories of both classes (``1_fake/sub/0_real/x.png``)."""
        found = {part: self.labels[part] for part in rel.split("/")[:-1] if part in self.labels}
        if len(set(found.values())) > 1:
            raise DataError(
                f"{self._where()}: {rel} lies below label directories of both classes ({', '.join(found)}), so its "
                "label is ambiguous; move it below one of them."
            )

    def _scan(self, split: str, subsets: list[str] | None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
        root = self.file_root()
        if not root.is_dir():
            raise missing_path(self._where(), "images", root, self.spec["root"])
        default_split = self.spec["split"] or "test"
        if "split" not in self.fields and split != default_split:
            raise DataError(f"{self._where()} has one split, {default_split!r}; there is no split {split!r}.")
        walk = TreeWalk(root, self.extensions, self._where(), Confinement([self.data_root, root]),
                        allow_outside=self.spec["allow_outside_root"])
        # Walk the layout fields level by level; each branch carries the field values seen so far.
        branches: list[tuple[Path, dict[str, str]]] = [(root, {})]
        for field in [f for f in self.fields if f != "label"]:
            wanted = [split] if field == "split" else subsets
            branches = [
                (path / name, {**values, field: name})
                for path, values in branches
                for name in self._pick(walk, path, field, wanted)
            ]
        rows = []
        for path, values in branches:
            subset = values.get("subset", self.name)
            if "label" in self.fields:
                items = self._labelled(walk, path)
            else:
                label = self.spec["label"]
                if isinstance(label, dict):
                    if subset not in label:
                        raise DataError(
                            f"{self._where()}: 'label' gives no label for subset {subset!r}; add it."
                        )
                    label = label[subset]
                items = [(img, parse_label(label)) for img in walk.images(path)]
            for img, label in items:
                rel = walk.rel(img)
                if self.labels:
                    self._check_one_label(rel)
                rows.append({"id": rel, "label": label, "split": split, "subset": subset, "group": rel})
        if not rows:
            raise DataError(
                f"{self._where()} found no images ({', '.join(sorted(self.extensions))}) for split {split!r} "
                f"under {root}; check 'layout' and 'extensions'."
            )
        if walk.outside:
            link, real = walk.outside[0]
            note = (f"{self._where()}: {len(walk.outside)} symbolic link(s) of split {split!r} lead outside the data "
                    f"root (e.g. {link} -> {real}); read because the source sets allow_outside_root: true.")
            if note not in self.notes:
                self.notes.append(note)
        return make_table(rows), {reason: sorted(paths) for reason, paths in sorted(walk.ignored.items())}

    def _listing(self, split: str, subsets: list[str] | None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
        if "subset" not in self.fields:
            if subsets is not None and set(subsets) != {self.name}:
                raise DataError(
                    f"{self._where()} has no {{subset}} in its layout; its one subset is {self.name!r}."
                )
            subsets = None
        key = (split, None if subsets is None else tuple(sorted(subsets)))
        if key not in self._cache:
            self._cache[key] = self._scan(split, None if key[1] is None else list(key[1]))
        return self._cache[key]

    # -- contract -------------------------------------------------------------------------------
    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Return the table of ``split``, limited to ``subsets`` (directory names) when given."""
        return self._listing(split, subsets)[0].copy()

    def ignored_files(self, split: str, subsets: list[str] | None = None) -> dict[str, list[str]]:
        """Files below the listed directories of ``split`` not read, by reason (paths below ``root``)."""
        return {reason: list(paths) for reason, paths in self._listing(split, subsets)[1].items()}

    def file_root(self) -> Path:
        """The source's ``root`` directory (ids are paths below it)."""
        return self.resolve(self.spec["root"])
