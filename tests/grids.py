"""Helpers of the grid tests: folder data, a protocol of many short epochs, a plugin module for child runs.

Cells run as child processes (``python -m bench run``), so a test detector must be importable there:
:func:`plugin` writes it as a module on ``PYTHONPATH`` (inherited by local and SLURM jobs alike) and
registers it here too. ``SLOW_STEP_S`` in the environment makes each of its training steps sleep, so a
cell runs long enough to be cancelled or signalled while the numbers stay those of a quick run; with
``SLOW_FIRST_ATTEMPT=1`` only a job's first attempt is slow (SLURM sets ``SLURM_RESTART_COUNT`` after a requeue).
"""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import FOLDER_PROTOCOL
from images import write_image

PLUGIN = '''"""Test detectors for grid tests (a plugin module, imported by every cell with --plugin)."""
import os
import time
from dataclasses import dataclass

from torch import nn

from bench import Detector, register_detector


@register_detector("slow_linear")
class SlowLinear(Detector):
    """Pooled pixels into a linear layer with dropout, selected on the last epoch; steps sleep SLOW_STEP_S."""

    @dataclass
    class Config:
        image_size: int = 32
        lr: float = 0.5
        epochs: int = 3
        select: str = "last"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Dropout(0.3), nn.Linear(3 * 8 * 8, 1))

    def forward(self, images):
        return self.net(nn.functional.adaptive_avg_pool2d(images, 8).flatten(1)).squeeze(1)

    def train_step(self, batch, ctx):
        if os.environ.get("SLOW_FIRST_ATTEMPT") != "1" or os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
            time.sleep(float(os.environ.get("SLOW_STEP_S", "0")))
        return super().train_step(batch, ctx)
'''


def folder_data(root: Path, n: int = 4) -> Path:
    """``root/ds/{train,val,test}/{0_real,1_fake}/<i>.png``: ``n`` small images per class and split."""
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(n):
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40),
                            seed=i + 7 * len(split) + 3 * len(label))
    return root


def folder_protocol(path: Path, epochs: int | None = None) -> Path:
    """The tests' folder protocol at ``path`` (named after the file), optionally with an epoch budget."""
    text = FOLDER_PROTOCOL.format(name=path.stem, description="folder data for grid tests")
    path.write_text(text + (f"budget: {{max_epochs: {epochs}}}\n" if epochs else ""))
    return path


def plugin(tmp_path: Path, monkeypatch, text: str = PLUGIN, name: str = "grid_test_detectors") -> str:
    """Write a plugin module, put it on PYTHONPATH for child runs and on sys.path here; its name."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    sys.modules.pop(name, None)
    return name


def unregister_plugin(detectors: tuple[str, ...] = ("slow_linear",), name: str = "grid_test_detectors") -> None:
    """Forget a plugin's detectors, so the next test registers its own copy."""
    from bench.plugin.registry import DETECTORS

    for detector in detectors:
        if detector in DETECTORS.names():
            DETECTORS.remove(detector)
    sys.modules.pop(name, None)
