"""Radius sweep and COR (bench/analysis/sweep.py): the COR rule, radius parsing, validation, and the sweep as a
grid (one bench run per radius through bench.grid's local executor): resume, reuse, outputs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from grids import plugin, unregister_plugin

from bench.analysis.diagnose import load_run_detector
from bench.analysis.sweep import critical_radius, format_cor_table, parse_radii, run_name, sweep
from bench.errors import BenchError, ConfigError
from bench.grid import GridError
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


TINY_SAM = '''"""A tiny CNN with a `rho` setting, trained with SAM; TINY_SAM_FAIL_AT=<rho> makes that radius crash."""
import os
from dataclasses import dataclass

from torch import nn

from bench import Detector, register_detector
from bench.run.checks import CONTRACT_BATCH


@register_detector("tiny_sam")
class TinySam(Detector):
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
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 1))

    def forward(self, images):
        return self.net(images).squeeze(1)

    def train_step(self, batch, ctx):
        from bench.plugin.steps import sam_step

        # Crash on a real batch, not on the run-time contract check's two random images.
        fail = os.environ.get("TINY_SAM_FAIL_AT")
        if fail is not None and self.cfg.rho == float(fail) and len(batch["image"]) > CONTRACT_BATCH:
            raise RuntimeError("simulated crash")
        return sam_step(self, batch, ctx, rho=self.cfg.rho)
'''


@pytest.fixture
def tiny_sam(tmp_path, monkeypatch):
    """``tiny_sam``, a plugin module every cell imports (``--plugin``); registered here too."""
    module = plugin(tmp_path, monkeypatch, TINY_SAM, "sweep_test_detectors")
    monkeypatch.setenv("BENCH_PLUGINS", module)
    yield "tiny_sam"
    unregister_plugin(("tiny_sam",), module)


OPTS = RunnerOptions(batch_size=8, threads=1)


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning_finished_radii(tiny_protocol, tmp_path, tiny_sam, monkeypatch):
    out = tmp_path / "sweep"
    monkeypatch.setenv("TINY_SAM_FAIL_AT", "1.0")
    with pytest.raises(GridError, match=r"1 radius run\(s\) did not finish, first tiny/tiny_sam/rho1-s0 \(failed: "
                                        r"RuntimeError: simulated crash\).*run the same command again"):
        sweep(tiny_protocol, [tiny_sam], "0,0.1,1", out, opts=OPTS, limit=4)
    runs = out / "runs" / "tiny" / tiny_sam
    assert sorted(p.name for p in runs.iterdir()) == ["rho0-s0", "rho0.1-s0", "rho1-s0"]
    assert (runs / "rho1-s0" / "INCOMPLETE").exists() and not (runs / "rho1-s0" / "results.json").exists()
    first = json.loads((runs / "rho0.1-s0" / "results.json").read_text())
    assert not (out / "sweep.csv").exists()

    monkeypatch.delenv("TINY_SAM_FAIL_AT")
    with pytest.raises(GridError, match="rho1-s0 \\(failed"):  # a failed radius is retried only when asked
        sweep(tiny_protocol, [tiny_sam], "0,0.1,1", out, opts=OPTS, limit=4)
    frame = sweep(tiny_protocol, [tiny_sam], "0,0.1,1", out, opts=OPTS, limit=4, executor={"retries": 1})
    assert frame["status"].tolist() == ["reused", "reused", "ran"]  # only the failed radius ran again
    assert len((out / "jobs.jsonl").read_text().splitlines()) == 4
    assert frame["rho"].tolist() == [0.0, 0.1, 1.0]
    assert json.loads((runs / "rho0.1-s0" / "results.json").read_text())["run_id"] == first["run_id"]
    assert frame.loc[1, "val_auc"] == first["selection"]["val"]["auc"]
    assert frame.loc[1, "primary"] == first["groups"]["unseen"]["auc"]

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
    with pytest.raises(GridError, match="holds another grid"):
        sweep(tiny_protocol, [tiny_sam], "0.1", out, opts=OPTS, limit=3)


@pytest.mark.slow
def test_run_dir_without_results_is_set_aside_and_rerun(tiny_protocol, tmp_path, tiny_sam):
    from bench.analysis.sweep import sweep_grid
    from bench.grid import GridDir, plan_grid
    from bench.grid.run import job_name

    out = tmp_path / "sweep"
    plan = plan_grid(sweep_grid(tiny_protocol, [tiny_sam], [0.5], opts=OPTS, limit=4))
    GridDir(out).adopt(plan, plan.grid.executor, job_name(plan))  # the sweep's grid, made before a run was killed
    stale = out / "runs" / "tiny" / tiny_sam / "rho0.5-s0"
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("partial: true\n")
    frame = sweep(tiny_protocol, [tiny_sam], [0.5], out, opts=OPTS, limit=4)
    assert frame["status"].tolist() == ["ran"]
    assert (stale / "results.json").is_file()
    assert (stale.parent / "rho0.5-s0.interrupted" / "config.yaml").read_text() == "partial: true\n"
    log = (out / "logs" / "tiny" / tiny_sam / "rho0.5-s0.log").read_text()
    assert "aside to rho0.5-s0.interrupted: it had no results.json and nothing to resume" in log
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
    with pytest.raises(BenchError, match="key 'executor.partition'"):
        sweep(tiny_protocol, [tiny_sam], "0", out, executor={"partition": 3})
    with pytest.raises(ConfigError, match="--seeds lists seed 0 twice"):  # as `bench run --seeds 0,0`
        sweep(tiny_protocol, [tiny_sam], "0", out, seeds=[0, 0])
    with pytest.raises(ConfigError, match="--seeds has seed -1, outside 0..4294967295"):
        sweep(tiny_protocol, [tiny_sam], "0", out, seeds=[-1])
    with pytest.raises(BenchError, match=r"run.threads \(--threads\) 100000 is more than the \d+ core"):
        sweep(tiny_protocol, [tiny_sam], "0", out, opts=RunnerOptions(threads=100000))
    assert not out.exists()


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
