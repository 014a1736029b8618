"""Listing a directory tree for the ``folder`` source: links followed safely, nothing dropped silently.

Symbolic links inside the tree are followed (data roots assembled from links keep working), but
a link to a directory on its own path (``loop -> ..``, ``self -> .``) is a :class:`DataError`
naming the link, and the same real file reached twice in one listing (through a link to a
directory listed elsewhere, or a link to a file) is refused naming both paths. Files that are
not read (hidden, an extension outside the source's list, broken links) are counted by reason,
so a caller can report them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from bench.errors import DataError


class TreeWalk:
    """One listing of a source's tree (one split): images found, files left out, real paths seen."""

    def __init__(self, root: Path, extensions: set[str], where: str):
        self.root = root
        self.extensions = extensions
        self.where = where
        self.real_root = os.path.realpath(root)
        #: reason -> paths relative to the root of files seen but not read.
        self.ignored: dict[str, list[str]] = defaultdict(list)
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

    def subdirs(self, path: Path, chain: tuple[str, ...]) -> list[str]:
        """Sorted visible sub-directory names of ``path`` (links followed, loops refused)."""
        names = []
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if entry.is_symlink() and os.path.realpath(entry.path) in chain:
                    raise self._loop(entry.path, os.path.realpath(entry.path))
                names.append(entry.name)
        return sorted(names)

    def stray_images(self, path: Path) -> list[str]:
        """Sorted image file names directly in ``path``."""
        with os.scandir(path) as it:
            return sorted(e.name for e in it if self.is_image(e.name) and e.is_file())

    def note_outside_layout(self, path: Path, what: str) -> None:
        """Count image files sitting at a layout level (where only directories are read)."""
        for name in self.stray_images(path):
            self.ignored[f"image outside the layout (in a {what} level)"].append(self.rel(path / name))

    # -- walking ---------------------------------------------------------------------------------
    def images(self, path: Path, chain: tuple[str, ...] | None = None) -> list[Path]:
        """Every image below ``path`` (sorted), following links; other files are counted in ``ignored``."""
        out = []
        stack = [(path, chain or self.chain(path))]
        while stack:
            here, chain = stack.pop()
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
            subdirs = []
            for entry in entries:
                if entry.name.startswith("."):
                    self.ignored["hidden"].append(self.rel(entry.path))
                elif entry.is_dir():
                    real = self._real(entry, chain)
                    if real in chain:
                        raise self._loop(entry.path, real)
                    subdirs.append((Path(entry.path), (*chain, real)))
                elif not entry.is_file():
                    self.ignored["not a regular file (broken link, device, ...)"].append(self.rel(entry.path))
                elif not self.is_image(entry.name):
                    ext = os.path.splitext(entry.name)[1].lower()
                    self.ignored[f"extension {ext!r} not read" if ext else "no extension"].append(
                        self.rel(entry.path))
                else:
                    self._once(self._real(entry, chain), entry.path)
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
