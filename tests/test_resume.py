"""A run killed after an epoch resumes to exactly the results of a run never interrupted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench import training
from bench.api import run
from bench.cli import main
from bench.errors import BenchError
from bench.runner import RunnerOptions

SAM = {"tune": "norm", "image_size": 32}


def _only_run(root):
    runs = [p for p in root.glob("*/*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_a_run_killed_after_an_epoch_resumes_to_the_same_results(tiny_protocol, tmp_path, monkeypatch, capsys):
    opts = RunnerOptions(batch_size=8)
    full = run(tiny_protocol, "sam", overrides=SAM, out_dir=tmp_path / "full", opts=opts)

    save = training.save_state

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # as if killed right after epoch 1's state was written

    monkeypatch.setattr(training, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_protocol, "sam", overrides=SAM, out_dir=tmp_path / "killed", opts=RunnerOptions(batch_size=8))
    killed = _only_run(tmp_path / "killed")
    assert (killed / "INCOMPLETE").exists() and (killed / "state").is_dir()
    assert not (killed / "results.json").exists()
    monkeypatch.undo()

    main(["run", "--resume", str(killed)])
    assert "sam" in capsys.readouterr().out
    resumed = json.loads((killed / "results.json").read_text())
    assert not (killed / "INCOMPLETE").exists() and not (killed / "state").exists()
    assert resumed["selection"]["resumed_from_epoch"] == 1 and resumed["runner"]["resumed"] is True
    assert resumed["metrics"] == full["metrics"]
    assert resumed["selection"]["history"] == full["selection"]["history"]
    for name in full["metrics"]:
        a = pd.read_csv(tmp_path / "full" / "tiny" / "sam" / full["run_id"] / "predictions" / f"{name}.csv.gz")
        b = pd.read_csv(killed / "predictions" / f"{name}.csv.gz")
        assert a["score"].tolist() == b["score"].tolist()


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
