"""Confining paths: the one place that says whether a name or path may be used, and where it leads.

Three kinds of check, each a one-sentence error from the caller's point of view:

- :func:`check_component`: a name that becomes one directory or file name (a run name, a protocol,
  detector or test-set name inside ``--out``): no separator, not ``.``/``..``, no NUL or control
  character, at most 255 bytes. A run directory therefore always lies inside ``--out``.
- :func:`os_path_problem` / :func:`check_os_path`: a path string the OS cannot take (a NUL byte, a
  name over 255 bytes, a path over 4,095 bytes).
- :class:`Confinement`: files and followed symbolic links must resolve inside the data root (or the
  source's own root, so a data root assembled from links to other disks keeps working).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bench.errors import ConfigError

#: Longest file name and path most file systems take (Linux NAME_MAX and PATH_MAX - 1).
NAME_MAX, PATH_MAX = 255, 4095


def inside(relative: str) -> bool:
    """True when ``relative`` is a relative path that cannot leave its root (no ``..``, no drive)."""
    rel = relative.replace("\\", "/")
    # String tests, not pathlib: this runs once per file before every run.
    return bool(relative) and not rel.startswith("/") and ".." not in rel.split("/") and relative[1:2] != ":"


def os_path_problem(path: str) -> str | None:
    """Why the OS cannot take ``path`` (NUL byte, over-long name or path), or None when it can."""
    if "\x00" in path:
        return "contains a NUL byte"
    encoded = os.fsencode(path) if isinstance(path, str) else path
    if len(encoded) <= NAME_MAX:  # the common case, checked once per file: no name can be too long
        return None
    if len(encoded) > PATH_MAX:
        return f"is {len(encoded):,} bytes long, over the {PATH_MAX:,} a path may have"
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"has a name of {longest} bytes, over the {NAME_MAX} a file name may have"
    return None


def check_os_path(path: str, what: str) -> str:
    """Return ``path``, or raise ConfigError naming ``what`` when the OS cannot take it."""
    problem = os_path_problem(str(path))
    if problem:
        raise ConfigError(f"{what} {str(path)[:200]!r} {problem}; give a path the file system can hold.")
    return path


def check_component(name: str, what: str, fix: str = "choose another") -> str:
    """Return ``name`` when it is one safe path component; else one ConfigError naming ``what``.

    Refused: empty, ``.``, ``..``, a ``/`` or ``\\`` separator, NUL or another control character, or
    more than 255 bytes. Such a name would land outside the directory it is meant for, or not at all.
    """
    text = str(name)
    why = None
    if text in ("", ".", ".."):
        why = "is empty" if not text else f"is {text!r}, which names a directory, not a new entry"
    elif "/" in text or "\\" in text or (os.sep in text) or (os.altsep and os.altsep in text):
        why = "contains a path separator, so it would leave the directory it belongs in"
    elif any(ord(c) < 32 or ord(c) == 127 for c in text):
        why = "contains a NUL or control character"
    elif len(os.fsencode(text)) > NAME_MAX:
        why = f"is longer than {NAME_MAX} bytes"
    if why:
        raise ConfigError(f"{what} {text[:80]!r} {why}; {fix} (one plain name, e.g. letters, digits, '_', '-').")
    return text


class Confinement:
    """Which real paths a source may read: those inside the data root or the source's own root.

    ``outside(path, is_link)`` returns the real path of ``path`` when it lies outside, else None (the
    caller refuses it or, where the protocol allows paths outside the root, records it). Verdicts
    are memoised per directory, so checking every file of a large tree costs nothing beyond the
    ``lstat`` the caller makes anyway.
    """

    def __init__(self, roots: Iterable[str | Path]):
        self.roots = tuple(dict.fromkeys(os.path.realpath(r) for r in roots if r is not None))
        self._inside: dict[str, bool] = {}

    def contains(self, real: str) -> bool:
        """True when the real path ``real`` lies in one of the roots."""
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def outside(self, path: str, is_link: bool) -> str | None:
        """The real path of ``path`` when it lies outside the roots, else None.

        A file that is no link is inside exactly when its directory is, decided once per directory.
        """
        if is_link:
            real = os.path.realpath(path)
            return None if self.contains(real) else real
        parent, _, name = path.rpartition(os.sep)
        inside_ = self._inside.get(parent)
        if inside_ is None:
            inside_ = self._inside[parent] = self.contains(os.path.realpath(parent))
        return None if inside_ else os.path.join(os.path.realpath(parent), name)
