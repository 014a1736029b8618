"""Helpers of the bad-input tests (``tests/test_bad_input*.py``): run ``bench`` and check how it refuses.

:func:`refuses` runs ``bench ARGV`` in this process and asserts the contract of a user's mistake:
exit status 2, exactly one line on stderr that starts with ``error:``, no traceback, and **nothing
written outside ``--out``**: every file and directory under the test's temporary root, except the
``--out`` tree, is the same (path, size, modification time) after the command as before it. The one
place a run writes by design outside ``--out`` is the shared feature cache (``$BENCH_CACHE``, inside
the temporary root in tests): features of good images computed before a later refusal are valid
entries there, so that tree is not compared.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from images import write_image

from bench.cli import main

#: Detector settings that make clip_linear/sam tiny (the offline backbone at 32 px).
TINY = ["-o", "backbone=timm:tf_efficientnet_lite0@imagenet-offline", "-o", "image_size=32"]


def snapshot(root: Path, skip: Path | None) -> dict[str, tuple]:
    """``{path: (kind, size, mtime_ns)}`` of everything under ``root`` but the ``skip`` and cache trees."""
    found: dict[str, tuple] = {}
    skipped = [os.path.abspath(p) for p in (skip, os.environ.get("BENCH_CACHE")) if p]

    def excluded(path: str) -> bool:
        return any(path == s or path.startswith(s + os.sep) for s in skipped)

    for here, dirs, files in os.walk(root):
        if excluded(here):
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(here, name)
            if excluded(path):
                continue
            st = os.lstat(path)
            found[path] = (st.st_mode >> 12, st.st_size if name in files else 0, st.st_mtime_ns if name in files else 0)
    return found


def refuses(capsys, root: Path, argv: list[str], match: str, out: Path | str | None = None) -> str:
    """Run ``bench argv``: exit 2, one ``error:`` line matching ``match``, nothing new or changed outside ``--out``.

    ``out`` is the tree a command may write (default: the value of ``--out`` in ``argv``).
    """
    if out is None and "--out" in argv:
        out = argv[argv.index("--out") + 1]
    skip = Path(out).absolute() if out is not None else None
    before = snapshot(root, skip)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    after = snapshot(root, skip)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the refused command wrote outside --out: {changed[:5]}"
    return lines[0]


def folder_protocol(tmp_path: Path, name: str = "folderbad", n: int = 4, **extra: str) -> tuple[Path, Path]:
    """A protocol over a folder source ``data/ds/{split}/{0_real,1_fake}/<i>.png``; returns (protocol, data root).

    ``extra`` adds keys to the source spec, e.g. ``allow_outside_root="true"``.
    """
    root = tmp_path / "data"
    for s, split in enumerate(("train", "val", "test")):
        for c, label in enumerate(("0_real", "1_fake")):
            for i in range(n):  # every image its own pixels: a test image equal to a train one is not held out
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40), seed=(2 * s + c) * n + i)
    spec = ", ".join(["type: folder", "root: ds", 'layout: "{split}/{label}"', *(f"{k}: {v}" for k, v in extra.items())])
    proto = tmp_path / f"{name}.yaml"
    proto.write_text(f"""name: {name}
version: 1
description: folder data with bad files
sources:
  ds: {{{spec}}}
train: {{source: ds, split: train}}
val: {{source: ds, split: val, select: "best:auc"}}
test:
  t: {{source: ds, split: test}}
metrics: [auc]
primary: auc@t
budget: {{max_epochs: 1}}
seeds: [0]
""")
    return proto, root


def run_args(proto: Path, root: Path | None, out: Path, detector: str = "clip_linear") -> list[str]:
    """``run --protocol P --detector D [--data-root R] --out O`` plus the tiny backbone settings."""
    data = ["--data-root", str(root)] if root is not None else []
    return ["run", "--protocol", str(proto), "--detector", detector, *data, "--out", str(out), *TINY]
