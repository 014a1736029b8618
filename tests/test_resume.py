"""A run killed after an epoch resumes to exactly the results of a run never interrupted."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from torch import nn

from bench import Detector
from bench.api import run
from bench.cli import main
from bench.errors import BenchError
from bench.plugin.registry import DETECTORS
from bench.run import training
from bench.run.runner import RunnerOptions

SAM = {"tune": "norm", "image_size": 32}


class OrderSensitive(Detector):
    """Plain SGD on pooled pixels with dropout, selected on the last epoch: every score depends on the
    order of the batches, the augmentation and the random stream, so a resume must restore all three."""

    @dataclass
    class Config:
        image_size: int = 32
        lr: float = 0.5
        epochs: int = 3
        select: str = "last"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Dropout(0.3), nn.Linear(3 * 8 * 8, 1))

    def configure_optimizer(self, total_steps):
        return torch.optim.SGD(self.parameters(), lr=self.cfg.lr), None

    def forward(self, images):
        return self.net(nn.functional.adaptive_avg_pool2d(images, 8).flatten(1)).squeeze(1)


@pytest.fixture
def order_sensitive():
    DETECTORS.add("order_sensitive", OrderSensitive)
    yield "order_sensitive"
    DETECTORS.remove("order_sensitive")


def _only_run(root):
    runs = [p for p in root.glob("*/*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize("name", ["sam", "order_sensitive"])
def test_a_run_killed_after_an_epoch_resumes_to_the_same_results(tiny_protocol, tmp_path, monkeypatch, capsys,
                                                                   order_sensitive, name):
    overrides = SAM if name == "sam" else {}
    full = run(tiny_protocol, name, overrides=overrides, out_dir=tmp_path / "full", opts=RunnerOptions(batch_size=8))

    save = training.save_state

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # as if killed right after epoch 1's state was written

    monkeypatch.setattr(training, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_protocol, name, overrides=overrides, out_dir=tmp_path / "killed", opts=RunnerOptions(batch_size=8))
    killed = _only_run(tmp_path / "killed")
    assert (killed / "INCOMPLETE").exists() and (killed / "state").is_dir()
    assert not (killed / "results.json").exists()
    monkeypatch.undo()

    main(["run", "--resume", str(killed)])
    assert name in capsys.readouterr().out
    resumed = json.loads((killed / "results.json").read_text())
    assert not (killed / "INCOMPLETE").exists() and not (killed / "state").exists()
    assert resumed["selection"]["resumed_from_epoch"] == 1 and resumed["runner"]["resumed"] is True
    assert resumed["command"] == full["command"].replace("full", "killed") or resumed["command"].startswith("bench")
    assert resumed["metrics"] == full["metrics"]
    assert resumed["selection"]["history"] == full["selection"]["history"]
    for test in full["metrics"]:
        a = pd.read_csv(tmp_path / "full" / "tiny" / name / full["run_id"] / "predictions" / f"{test}.csv.gz")
        b = pd.read_csv(killed / "predictions" / f"{test}.csv.gz")
        assert a["score"].tolist() == b["score"].tolist()


def test_resume_refuses_settings_that_would_change_the_run(tmp_path):
    with pytest.raises(BenchError, match="drop -o, --limit"):
        main_raising(["run", "--resume", str(tmp_path), "-o", "lr=1", "--limit", "3"])
    # Runner settings are recorded with the run too: given again they would be ignored, so they are refused.
    with pytest.raises(BenchError, match="drop --batch-size, --no-cache, --skip-bad-images"):
        main_raising(["run", "--resume", str(tmp_path), "--batch-size", "8", "--no-cache", "--skip-bad-images"])


def test_resume_refuses_a_finished_run_and_a_foreign_folder(tiny_protocol, tmp_path):
    result = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=RunnerOptions(batch_size=16), limit=4)
    with pytest.raises(BenchError, match="finished run"):
        main_raising(["run", "--resume", result["run_dir"]])
    with pytest.raises(BenchError, match="not a run directory"):
        main_raising(["run", "--resume", str(tmp_path)])


def main_raising(argv):
    """Run a CLI command and re-raise its BenchError instead of exiting."""
    from bench.cli import build_parser

    args = build_parser().parse_args(argv)
    args.handler(args)
