"""``bench grid`` on a real SLURM: the one-node cluster of ``.ci/slurm.sh`` (slurmctld + slurmd + munged here).

The cluster is shared by the whole test run (a session fixture starts it when it is not running and
stops it at the end only then). Without root or Debian's ``slurm-wlm`` these tests skip with the
reason, except where ``BENCH_REQUIRE_SLURM=1`` (CI), where a missing SLURM is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from grids import folder_data, folder_protocol, plugin, unregister_plugin

from bench.grid import GridDir, cell_states, issue, parse_grid, plan_grid

ROOT = Path(__file__).resolve().parents[1]
SLURM_SH = ROOT / ".ci" / "slurm.sh"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def slurm():
    """A running one-node SLURM (partitions ``debug`` and ``short``, MaxTime 1 minute)."""
    def unavailable(reason: str):
        if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM is required here (BENCH_REQUIRE_SLURM=1), but {reason}")
        pytest.skip(reason)

    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    if os.geteuid() != 0:
        unavailable("the one-node cluster of .ci/slurm.sh runs its daemons as root")
    if not all(shutil.which(tool, path=path) for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue")):
        unavailable("slurm-wlm and munge are not installed (apt-get install -y slurm-wlm munge)")
    conf = subprocess.run(["bash", str(SLURM_SH), "env"], capture_output=True, text=True, check=True).stdout
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf.strip().split("=", 1)[1]
    started = subprocess.run(["bash", str(SLURM_SH), "status"], capture_output=True, check=False).returncode != 0
    if started:
        done = subprocess.run(["bash", str(SLURM_SH), "start"], capture_output=True, text=True, timeout=180,
                              check=False)
        if done.returncode != 0:
            unavailable(f".ci/slurm.sh start failed: {done.stderr.strip() or done.stdout.strip()}")
    yield
    if started:
        subprocess.run(["bash", str(SLURM_SH), "stop"], capture_output=True, timeout=180, check=False)
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


def grid(protocol: Path, detectors: list[str], data: Path, executor: dict, **keys):
    run = {"threads": 1, "batch_size": 4, "data_root": str(data), **keys.pop("run", {})}
    return parse_grid({"protocols": [str(protocol)], "detectors": detectors, "run": run, "executor": executor,
                       **keys}, "test grid")


def scores(gdir: GridDir, cell: str) -> pd.DataFrame:
    folder = gdir.run_dir(cell) / "predictions"
    return pd.concat([pd.read_csv(f) for f in sorted(folder.glob("*.csv.gz"))])[["id", "label", "score"]]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_slurm_grid_gives_the_local_grids_predictions_and_reruns_submit_nothing(slurm, tmp_path):
    data = folder_data(tmp_path / "data")
    proto = folder_protocol(tmp_path / "fold.yaml", epochs=2)
    keys = {"seeds": [0, 1]}
    on_slurm = plan_grid(grid(proto, ["clip_linear", "sam"], data, {"kind": "slurm", "cpus_per_cell": 1,
                                                                    "time_limit_min": 10}, **keys))
    local = plan_grid(grid(proto, ["clip_linear", "sam"], data, {"max_concurrent": 2}, **keys))
    slurm_dir, local_dir = GridDir(tmp_path / "slurm"), GridDir(tmp_path / "local")
    first = issue(on_slurm, slurm_dir, say=lambda _: None)
    assert first.complete and len(first.submitted) == 4, [s.line() for s in first.states]
    jobs = [json.loads(line) for line in (slurm_dir.root / "jobs.jsonl").read_text().splitlines()]
    assert {j["executor"] for j in jobs} == {"slurm"} and len({j["job_id"].split("_")[0] for j in jobs}) == 1  # one array
    assert issue(local, local_dir, say=lambda _: None).complete
    for cell in on_slurm.cells:
        assert scores(slurm_dir, cell.id).equals(scores(local_dir, cell.id)), cell.id
    again = issue(on_slurm, slurm_dir, say=lambda _: None)
    assert again.submitted == [] and again.complete
    assert len((slurm_dir.root / "jobs.jsonl").read_text().splitlines()) == 4


def test_a_cancelled_cell_resumes_and_a_bad_setting_fails_alone_with_its_reason(slurm, tmp_path, monkeypatch, capsys):
    module = plugin(tmp_path, monkeypatch)
    monkeypatch.setenv("SLOW_STEP_S", "1")
    data = folder_data(tmp_path / "data")
    proto = folder_protocol(tmp_path / "fold.yaml")
    try:
        plan = plan_grid(grid(proto, ["slow_linear"], data, {"kind": "slurm", "cpus_per_cell": 1, "time_limit_min": 10},
                              settings={"epochs": 12}, overrides={"lr": [0.5, 1e30]}, run={"plugins": [module]}))
        gdir = GridDir(tmp_path / "g")
        issue(plan, gdir, wait=False, say=lambda _: None)
        good, bad = "fold/slow_linear/lr0.5-epochs12-s0", "fold/slow_linear/lr1e30-epochs12-s0"
        wait_for(lambda: (gdir.run_dir(good) / "state" / "training.pt").is_file(), 120, "a saved epoch")
        job = next(s.job_id for s in cell_states(gdir) if s.cell == good)
        subprocess.run(["scancel", job], check=True)
        wait_for(lambda: {s.cell: s.state for s in cell_states(gdir)}[good] == "interrupted", 60, "the cancel")
        wait_for(lambda: {s.cell: s.state for s in cell_states(gdir)}[bad] == "failed", 120, "the bad cell")
        code, out, _ = run_cli(["grid", "status", str(gdir.root)], capsys)
        assert code == 0 and "2 cells: 1 failed, 1 interrupted" in out
        line = next(x for x in out.splitlines() if x.startswith(bad))
        assert "failed" in line and "slurm job" in line and "diverged at step" in line
        monkeypatch.setenv("SLOW_STEP_S", "0")  # the resumed attempt need not be slow
        again = issue(plan, gdir, say=lambda _: None)
    finally:
        unregister_plugin()
    states = {s.cell: s for s in again.states}
    assert again.submitted == [good] and states[good].state == "done" and states[bad].state == "failed"
    result = json.loads((gdir.run_dir(good) / "results.json").read_text())
    assert result["selection"]["resumed_from_epoch"] >= 1 and result["selection"]["epochs_run"] == 12


def test_a_cell_that_hits_its_time_limit_is_requeued_and_ends_as_an_uninterrupted_run(slurm, tmp_path, monkeypatch):
    from bench.api import run
    from bench.run.runner import RunnerOptions

    module = plugin(tmp_path, monkeypatch)
    monkeypatch.setenv("SLOW_STEP_S", "2")
    monkeypatch.setenv("SLOW_FIRST_ATTEMPT", "1")
    data = folder_data(tmp_path / "data")
    proto = folder_protocol(tmp_path / "fold.yaml")
    try:
        # SLURM checks time limits every 30 s, at a phase of its own, and signals at the first check where at
        # most 10 + 30 s of the 1-minute limit remain: 20 to 50 s after the start. The first attempt (36 epochs
        # of one 2-s step) lasts longer, so it is signalled and requeued; the next attempt, no longer slowed,
        # finishes before its own first signal (48 s after its start at the earliest).
        plan = plan_grid(grid(proto, ["slow_linear"], data, {"kind": "slurm", "cpus_per_cell": 1, "time_limit_min": 1,
                                                            "signal_delay_s": 10, "max_requeues": 8},
                              settings={"epochs": 36}, run={"plugins": [module], "batch_size": 8}))
        gdir = GridDir(tmp_path / "g")
        outcome = issue(plan, gdir, say=lambda _: None)
        monkeypatch.setenv("SLOW_STEP_S", "0")
        reference = run(proto, "slow_linear", overrides={"epochs": 36}, data_root=data, out_dir=tmp_path / "ref",
                        opts=RunnerOptions(batch_size=8, threads=1))
    finally:
        unregister_plugin()
    cell = plan.cells[0].id
    assert outcome.complete, [s.line() for s in outcome.states]
    log = gdir.log(cell).read_text()
    assert "stopped for a requeue" in log and " restart 1 " in log
    assert len(outcome.submitted) == 1  # one job, requeued by SLURM, not resubmitted
    expected = pd.concat([pd.read_csv(f) for f in sorted((Path(reference["run_dir"]) / "predictions").glob("*.csv.gz"))])
    assert scores(gdir, cell).equals(expected[["id", "label", "score"]])


def test_slurms_refusals_are_one_sentence_with_its_reason_and_submit_nothing(slurm, tmp_path, capsys):
    data = folder_data(tmp_path / "data", n=2)
    proto = folder_protocol(tmp_path / "fold.yaml")
    base = ["grid", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(data), "--executor",
            "slurm", "--out", str(tmp_path / "g")]
    for extra, reason in [(["--partition", "nope"], "Invalid partition name specified"),
                          (["--partition", "short", "--time-limit", "5"], "Requested time limit is invalid")]:
        code, _, err = run_cli([*base, *extra], capsys)
        assert code == 2 and err.startswith("error: SLURM refused the grid's jobs (") and reason in err, err
        assert err.count("\n") == 1 and "nothing was submitted" in err
    assert not (tmp_path / "g" / "jobs.jsonl").exists()
    # bench sweep is a grid too: the same executor, the same refusal
    code, _, err = run_cli(["sweep", "--protocol", str(proto), "--detector", "sam", "--rho", "0,0.1", "--data-root",
                            str(data), "--executor", "slurm", "--partition", "nope", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "Invalid partition name specified" in err
