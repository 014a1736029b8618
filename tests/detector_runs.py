"""Run a detector end to end through the CLI on the tiny protocol; shared by the detector test modules.

``from detector_runs import run_tiny``: the run uses ``--limit 4 --batch-size 8`` (8 training images,
one step per epoch, 2 epochs) and returns its ``results.json`` as a dict.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_tiny_protocol

from bench.cli import main


def run_tiny(tmp_path: Path, detector: str, *extra: str) -> dict:
    """``bench run`` on the tiny protocol into ``tmp_path/runs``; return the one run's results."""
    proto = write_tiny_protocol(tmp_path)
    out = tmp_path / "runs"
    before = set(out.rglob("results.json")) if out.exists() else set()
    main(["run", "--protocol", str(proto), "--detector", detector, "--limit", "4", "--batch-size", "8",
          "--out", str(out), *extra])
    [new] = sorted(set(out.rglob("results.json")) - before)
    return json.loads(new.read_text())
