"""The check every file of a run gets before the first batch: cheap, no pixel decoded.

Per file: the id is a path inside the source's root (unless ``allow_outside_root``), the OS can take
the path (no NUL byte, no over-long name), it exists and is a regular non-empty file, it resolves
inside the data root or the source's root (a symbolic link leading elsewhere is refused unless the
source allows it), and its header is readable and within the decompression-bomb guard. One
``lstat`` (plus a ``stat`` for links) and one read of the first 64 KiB per file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd

from bench.data.decode import check_header
from bench.inputs import Confinement, inside, os_path_problem


def check_files_cheaply(source: Any, table: pd.DataFrame, root: Path) -> list[tuple[str, str]]:
    """``(id, reason)`` for every row of ``table`` whose file cannot be used (see the module docstring).

    ``source`` is the :class:`bench.data.base.Source` the table comes from (its name, spec and data root).
    """
    allow, bad = source.spec.get("allow_outside_root"), []
    confinement = None if allow else Confinement([source.data_root, root])
    for item_id in table["id"]:
        if not allow and not inside(item_id):
            bad.append((item_id, f"Source {source.name!r}: id {item_id!r} is not a path inside {root}."))
            continue
        path = os.path.join(root, item_id)  # strings, not Path objects: one per file adds up
        problem = os_path_problem(path)
        if problem:
            bad.append((item_id, f"Source {source.name!r}: the path of id {item_id[:100]!r} {problem}"))
            continue
        try:
            st = os.lstat(path)  # one call says whether it is a link (then followed) and what it is
            linked = stat.S_ISLNK(st.st_mode)
            if linked:
                st = os.stat(path)
        except FileNotFoundError:
            bad.append((item_id, f"{path} does not exist"))
            continue
        except OSError as err:
            bad.append((item_id, f"{path} cannot be read ({err.strerror})"))
            continue
        real = confinement.outside(path, linked) if confinement is not None else None
        if real is not None:
            bad.append((item_id, (f"{path} resolves to {real}, outside the data root (through a symbolic link); "
                                  "move it below the data root, or set allow_outside_root: true in the source")))
            continue
        if not stat.S_ISREG(st.st_mode):
            reason = f"{path} is not a regular file"
        elif st.st_size == 0:
            reason = f"{path} is a zero-byte file"
        else:
            reason = check_header(path, path)
        if reason:
            bad.append((item_id, reason))
    return bad
