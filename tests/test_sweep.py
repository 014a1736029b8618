"""Radius sweep and COR (bench/analysis/sweep.py): the COR rule, radius parsing, validation, resume, outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest
import torch
from torch import nn

from bench import Detector
from bench.analysis.diagnose import load_run_detector
from bench.analysis.sweep import critical_radius, format_cor_table, parse_radii, run_name, sweep
from bench.errors import ConfigError
from bench.plugin.registry import DETECTORS
from bench.run.checks import CONTRACT_BATCH
from bench.run.runner import RunnerOptions

NAN = float("nan")


@pytest.mark.parametrize("rhos, aucs, expected", [
    # baseline 0.9 → threshold 0.7; first below it is 0.1
    ([0, 0.01, 0.1, 1], [0.9, 0.88, 0.6, 0.5], (0.01, 0.1)),
    # exactly at the threshold is not a collapse (strictly below)
    ([0, 0.1, 1], [0.9, 0.7, 0.69], (0.1, 1.0)),
    # nothing collapses: COR is the largest radius, flagged by collapsed_at None
    ([0, 0.1], [0.9, 0.8], (0.1, None)),
    # radii are sorted first
    ([1, 0, 0.1], [0.5, 0.9, 0.85], (0.1, 1.0)),
    # only the first collapse counts, a recovery after it does not
    ([0, 0.1, 0.2, 0.3], [0.9, 0.6, 0.9, 0.9], (0.0, 0.1)),
    # a NaN AUC (diverged run) is a collapse
    ([0, 0.1, 0.2], [0.8, NAN, 0.8], (0.0, 0.1)),
    # the baseline is ρ_min even when it is not 0
    ([0.05, 0.5], [0.7, 0.59], (0.05, 0.5)),
    # one radius, above chance: no collapse
    ([0.05], [0.8], (0.05, None)),
    # smallest radius at or below chance (or NaN): COR undefined, collapse at ρ_min
    ([0, 0.1], [0.5, 0.4], (None, 0.0)),
    ([0, 0.1], [0.3, 0.9], (None, 0.0)),
    ([0, 0.1], [NAN, 0.9], (None, 0.0)),
])
def test_critical_radius_hand_cases(rhos, aucs, expected):
    assert critical_radius(rhos, aucs) == expected


def test_critical_radius_needs_one_auc_per_radius():
    with pytest.raises(ValueError):
        critical_radius([0, 0.1], [0.9])
    with pytest.raises(ValueError):
        critical_radius([], [])


def test_parse_radii():
    assert parse_radii("0, 0.01,1,0.01") == [0.0, 0.01, 1.0]
    assert parse_radii([0.5, 0, 2]) == [0.0, 0.5, 2.0]
    for bad in ["-0.1", "abc", "nan", "inf", ""]:
        with pytest.raises(ConfigError, match=f"--rho value {bad!r} is not a radius"):
            parse_radii(f"0,{bad},1")
    with pytest.raises(ConfigError, match="--rho value True"):
        parse_radii([0, True])
    with pytest.raises(ConfigError, match="lists no radius"):
        parse_radii([])


def test_run_names_are_deterministic_and_distinct():
    assert [run_name(r, 0) for r in (0, 0.01, 0.05, 1, 1.5, 1e-5)] == [
        "rho0-s0", "rho0.01-s0", "rho0.05-s0", "rho1-s0", "rho1.5-s0", "rho1e-05-s0"]
    assert run_name(0.1, 3) == "rho0.1-s3"


class TinySam(Detector):
    """A tiny CNN with a ``rho`` setting, trained with SAM; ``fail_at`` makes one radius crash."""

    fail_at: ClassVar[float | None] = None
    built: ClassVar[list[float]] = []

    @dataclass
    class Config:
        image_size: int = 32
        rho: float = 0.05
        lr: float = 1e-2
        weight_decay: float = 0.0
        epochs: int = 1
        select: str | None = None

    def __init__(self, cfg=None):
        super().__init__(cfg)
        TinySam.built.append(self.cfg.rho)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 1))

    def forward(self, images):
        return self.net(images).squeeze(1)

    def train_step(self, batch, ctx):
        from bench.plugin.steps import sam_step

        # Crash on a real batch, not on the run-time contract check's two random images.
        if self.cfg.rho == TinySam.fail_at and len(batch["image"]) > CONTRACT_BATCH:
            raise RuntimeError("simulated crash")
        return sam_step(self, batch, ctx, rho=self.cfg.rho)


@pytest.fixture
def tiny_sam():
    torch.set_num_threads(1)
    DETECTORS.add("tiny_sam", TinySam)
    TinySam.built, TinySam.fail_at = [], None
    yield "tiny_sam"
    DETECTORS.remove("tiny_sam")
    TinySam.fail_at = None


OPTS = RunnerOptions(batch_size=8)


def test_interrupted_sweep_resumes_without_rerunning_finished_radii(tiny_protocol, tmp_path, tiny_sam, capsys):
    out = tmp_path / "sweep"
    TinySam.fail_at = 1.0
    with pytest.raises(RuntimeError, match="simulated crash"):
        sweep(tiny_protocol, [tiny_sam], "0,0.1,1", out, opts=OPTS, limit=4)
    assert "Run the same command again to resume" in capsys.readouterr().err
    runs = out / "runs" / "tiny" / tiny_sam
    assert sorted(p.name for p in runs.iterdir()) == ["rho0-s0", "rho0.1-s0", "rho1-s0"]
    assert (runs / "rho1-s0" / "INCOMPLETE").exists() and not (runs / "rho1-s0" / "results.json").exists()
    first = json.loads((runs / "rho0.1-s0" / "results.json").read_text())
    assert not (out / "sweep.csv").exists()

    TinySam.fail_at, TinySam.built = None, []
    frame = sweep(tiny_protocol, [tiny_sam], "0,0.1,1", out, opts=OPTS, limit=4)
    assert TinySam.built == [1.0]  # only the missing radius was trained
    assert frame["status"].tolist() == ["reused", "reused", "ran"]
    assert frame["rho"].tolist() == [0.0, 0.1, 1.0]
    assert json.loads((runs / "rho0.1-s0" / "results.json").read_text())["run_id"] == first["run_id"]
    assert frame.loc[1, "val_auc"] == first["selection"]["val"]["auc"]
    assert frame.loc[1, "primary"] == first["groups"]["unseen"]["auc"]
    assert "finished earlier, reusing" in capsys.readouterr().err

    saved = pd.read_csv(out / "sweep.csv")
    for column in ["detector", "rho", "val_auc", "primary", "upsample_nearest/auc", "peaks_p4/eer",
                   "unseen/auc", "in_domain/acc", "run_dir"]:
        assert column in saved.columns
    assert not any(c.endswith("/n_real") for c in saved.columns)
    assert saved["run_dir"].tolist() == [str((runs / n).relative_to(out)) for n in ("rho0-s0", "rho0.1-s0", "rho1-s0")]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = pd.read_csv(out / "points.csv")  # intervals over test images from the runs' predictions
    assert drawn["lo"].notna().all() and (drawn["lo"] <= drawn["primary"] + 1e-9).all()
    assert (drawn["primary"] <= drawn["hi"] + 1e-9).all() and drawn["seeds"].eq(1).all()
    assert json.loads((out / "cor.json").read_text())["seeds"] == [0]
    cor = json.loads((out / "cor.json").read_text())["detectors"][tiny_sam]
    assert (cor["cor"], cor["collapsed_at"]) == critical_radius(saved["rho"].tolist(), saved["val_auc"].tolist())
    assert cor["status"] in {"collapse", "no_collapse", "undefined"} and cor["rho_min"] == 0.0
    assert tiny_sam in format_cor_table({tiny_sam: cor})

    # Each sweep run is a full run directory: its trained detector can be rebuilt for GSNR.
    assert load_run_detector(runs / "rho0.1-s0").cfg.rho == 0.1

    # The same out dir with other settings must not silently mix runs.
    with pytest.raises(ConfigError, match="different limit"):
        sweep(tiny_protocol, [tiny_sam], "0.1", out, opts=OPTS, limit=3)


def test_run_dir_without_results_is_set_aside_and_rerun(tiny_protocol, tmp_path, tiny_sam, capsys):
    out = tmp_path / "sweep"
    stale = out / "runs" / "tiny" / tiny_sam / "rho0.5-s0"
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("partial: true\n")
    frame = sweep(tiny_protocol, [tiny_sam], [0.5], out, opts=OPTS, limit=4)
    assert frame["status"].tolist() == ["ran"] and TinySam.built == [0.5]
    assert (stale / "results.json").is_file()
    assert (stale.parent / "rho0.5-s0.interrupted" / "config.yaml").read_text() == "partial: true\n"
    assert "interrupted run" in capsys.readouterr().err
    summary = json.loads((out / "cor.json").read_text())["detectors"][tiny_sam]
    auc = frame.loc[0, "val_auc"]
    # One radius: no collapse when it is above chance, else the COR is undefined.
    expected = (0.5, None, "no_collapse") if auc > 0.5 else (None, 0.5, "undefined")
    assert (summary["cor"], summary["collapsed_at"], summary["status"]) == expected

def test_bad_inputs_fail_before_any_run(tiny_protocol, tmp_path, tiny_sam):
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match="--rho value '-1' is not a radius"):
        sweep(tiny_protocol, [tiny_sam], "0,-1", out)
    with pytest.raises(ConfigError, match="'univfd' has no 'rho' setting"):
        sweep(tiny_protocol, [tiny_sam, "univfd"], "0,0.1", out)
    with pytest.raises(ConfigError, match="-o rho=0.2 conflicts"):
        sweep(tiny_protocol, [tiny_sam], "0,0.1", out, overrides={"rho": 0.2})
    with pytest.raises(ConfigError, match="Unknown detector"):
        sweep(tiny_protocol, ["no_such_detector"], "0", out)
    assert not out.exists() and TinySam.built == []


def test_a_sweep_over_several_seeds_draws_their_mean_range_and_interval(tiny_protocol, tmp_path, tiny_sam):
    out = tmp_path / "sweep"
    frame = sweep(tiny_protocol, [tiny_sam], "0,0.1", out, opts=OPTS, limit=4, seeds=[0, 1])
    assert sorted(zip(frame["rho"], frame["seed"])) == [(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1)]
    drawn = pd.read_csv(out / "points.csv")
    assert drawn["seeds"].eq(2).all() and drawn["lo"].notna().all()
    for rho, part in frame.groupby("rho"):
        row = drawn[drawn["rho"] == rho].iloc[0]
        assert row["primary"] == pytest.approx(part["primary"].mean(), abs=1e-5)
        assert (row["seed_min"], row["seed_max"]) == pytest.approx((part["primary"].min(), part["primary"].max()),
                                                                    abs=1e-5)
    summary = json.loads((out / "cor.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert summary["detectors"][tiny_sam]["val_aucs"] == pytest.approx(frame.groupby("rho")["val_auc"].mean().tolist())
