"""Listing a directory tree for the ``folder`` source: links followed safely, nothing dropped silently.

Symbolic links inside the tree are followed (data roots assembled from links keep working), but
a link to a directory on its own path (``loop -> ..``, ``self -> .``) is a :class:`DataError`
naming the link, the same real file reached twice in one listing (through a link to a directory
listed elsewhere, or a link to a file) is refused naming both paths, and a link that leads outside
the data root (and the source's root) is refused naming the link, unless the source allows it
(``allow_outside_root: true``), when it is followed and listed in :attr:`TreeWalk.outside` for the
run to record. Entries that are not read (hidden, an extension outside the source's list, broken
links, a directory named like an image, files at a layout level) are counted by reason, so a
caller can report them; a directory that cannot be listed is a :class:`DataError` naming it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from bench.errors import DataError
from bench.inputs import Confinement

#: Why a directory whose name ends like an image file is not read as one (its contents still are).
DIRECTORY_NAMED_LIKE_AN_IMAGE = "directory named like an image file"


class TreeWalk:
    """One listing of a source's tree (one split): images found, files left out, real paths seen.

    ``confinement`` says which real paths links may lead to (None: anywhere); with ``allow_outside``
    a link leading elsewhere is followed and recorded in :attr:`outside` instead of refused.
    """

    def __init__(self, root: Path, extensions: set[str], where: str, confinement: Confinement | None = None,
                 allow_outside: bool = False):
        self.root = root
        self.extensions = extensions
        self.where = where
        self.real_root = os.path.realpath(root)
        self.confinement = confinement
        self.allow_outside = allow_outside
        #: reason -> paths relative to the root of files seen but not read.
        self.ignored: dict[str, list[str]] = defaultdict(list)
        #: (link below the root, real path) of links followed outside the data root (when allowed).
        self.outside: list[tuple[str, str]] = []
        self._seen: dict[str, str] = {}  # real path of an image -> its path below the root

    # -- helpers ---------------------------------------------------------------------------------
    def rel(self, path: str | Path) -> str:
        """``path`` relative to the root, ``/``-separated."""
        return Path(os.path.relpath(path, self.root)).as_posix()

    def is_image(self, name: str) -> bool:
        """True for a visible file name with one of the source's extensions."""
        return not name.startswith(".") and os.path.splitext(name)[1].lower() in self.extensions

    def chain(self, path: Path) -> tuple[str, ...]:
        """Real paths of the directories from the root down to ``path``; a loop among them is an error."""
        chain = [self.real_root]
        here = self.root
        for part in path.relative_to(self.root).parts:
            here = here / part
            real = os.path.realpath(here)
            if real in chain:
                raise self._loop(here, real)
            chain.append(real)
        return tuple(chain)

    def _loop(self, link: Path | str, real: str) -> DataError:
        return DataError(
            f"{self.where}: {link} is a symbolic link to {real}, a directory on its own path, so the tree "
            "would be listed forever (or its images counted twice, some under the wrong label); remove the "
            "link."
        )

    def _entries(self, path: Path | str) -> list[os.DirEntry]:
        """The entries of directory ``path``, sorted by name; an unlistable directory is one DataError."""
        try:
            with os.scandir(path) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise DataError(f"{self.where}: directory {path} cannot be listed ({err.strerror or err}); check its "
                            "permissions (the images below it would otherwise be left out unseen).") from None

    def _follow(self, entry: os.DirEntry, real: str) -> None:
        """Refuse (or, when allowed, record) a link whose target lies outside the data root."""
        if self.confinement is None or self.confinement.contains(real):
            return
        if not self.allow_outside:
            raise DataError(
                f"{self.where}: {entry.path} is a symbolic link to {real}, outside the data root, so its images "
                "would be read from elsewhere unnoticed; move them below the data root, or set allow_outside_root: "
                "true in the source to read them there (the run then records it)."
            )
        self.outside.append((self.rel(entry.path), real))

    def subdirs(self, path: Path, chain: tuple[str, ...]) -> list[str]:
        """Sorted visible sub-directory names of ``path`` (links followed, loops and escapes refused)."""
        names = []
        for entry in self._entries(path):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real in chain:
                    raise self._loop(entry.path, real)
                self._follow(entry, real)
            names.append(entry.name)
        return names

    def stray_images(self, path: Path) -> list[str]:
        """Sorted image file names directly in ``path``."""
        return [e.name for e in self._entries(path) if self.is_image(e.name) and e.is_file()]

    def note_outside_layout(self, path: Path, what: str) -> None:
        """Count every entry at a layout level (where only visible directories are read) that is not read."""
        for entry in self._entries(path):
            if entry.name.startswith("."):
                self.ignored["hidden"].append(self.rel(entry.path))
            elif entry.is_dir():
                if self.is_image(entry.name):
                    self.ignored[DIRECTORY_NAMED_LIKE_AN_IMAGE].append(self.rel(entry.path))
            elif self.is_image(entry.name) and entry.is_file():
                self.ignored[f"image outside the layout (in a {what} level)"].append(self.rel(entry.path))
            else:
                self.ignored[f"file outside the layout (in a {what} level)"].append(self.rel(entry.path))

    # -- walking ---------------------------------------------------------------------------------
    def images(self, path: Path, chain: tuple[str, ...] | None = None) -> list[Path]:
        """Every image below ``path`` (sorted), following links; other files are counted in ``ignored``."""
        out = []
        stack = [(path, chain or self.chain(path))]
        while stack:
            here, chain = stack.pop()
            subdirs = []
            for entry in self._entries(here):
                if entry.name.startswith("."):
                    self.ignored["hidden"].append(self.rel(entry.path))
                elif entry.is_dir():
                    real = self._real(entry, chain)
                    if real in chain:
                        raise self._loop(entry.path, real)
                    if entry.is_symlink():
                        self._follow(entry, real)
                    if self.is_image(entry.name):
                        self.ignored[DIRECTORY_NAMED_LIKE_AN_IMAGE].append(self.rel(entry.path))
                    subdirs.append((Path(entry.path), (*chain, real)))
                elif not entry.is_file():
                    self.ignored["not a regular file (broken link, device, ...)"].append(self.rel(entry.path))
                elif not self.is_image(entry.name):
                    ext = os.path.splitext(entry.name)[1].lower()
                    self.ignored[f"extension {ext!r} not read" if ext else "no extension"].append(
                        self.rel(entry.path))
                else:
                    real = self._real(entry, chain)
                    if entry.is_symlink():
                        self._follow(entry, real)
                    self._once(real, entry.path)
                    out.append(Path(entry.path))
            stack.extend(reversed(subdirs))
        return out

    @staticmethod
    def _real(entry: os.DirEntry, chain: tuple[str, ...]) -> str:
        """The real path of a directory entry: resolved for a link, else its real directory plus its name."""
        return os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(chain[-1], entry.name)

    def _once(self, real: str, path: str) -> None:
        """Refuse a real file reached a second time in this listing."""
        rel = self.rel(path)
        first = self._seen.setdefault(real, rel)
        if first != rel:
            raise DataError(
                f"{self.where}: {first} and {rel} are the same file ({real}), reached twice through a "
                "symbolic link; a split may hold each image once, so remove one of the links."
            )
