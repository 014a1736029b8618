"""``bench grid`` without SLURM: the grid file, cells and names, checks before submission, the SLURM →
Accelerate mapping, each cell's state, and a small grid end to end on submitit's local executor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_tiny_protocol
from grids import folder_data, folder_protocol, plugin, unregister_plugin

from bench.errors import ConfigError
from bench.grid import GridDir, GridError, cell_states, issue, load_grid, parse_grid, plan_grid
from bench.grid.executors import sbatch_reason
from bench.grid.launch import accelerate_args, launcher
from bench.grid.spec import cell_name
from bench.grid.task import CellTask, failure_reason

ROOT = Path(__file__).resolve().parents[1]


def grid_of(tmp_path, **keys):
    proto = write_tiny_protocol(tmp_path)
    return parse_grid({"protocols": [str(proto)], "detectors": ["clip_linear"], **keys}, "test grid")


# -- the grid file and its cells ------------------------------------------------------------------------
def test_grid_file_errors_name_the_key_and_line(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("protocols: [synthetic_universal]\ndetectors: [sam]\nseedz: [0]\n")
    with pytest.raises(ConfigError, match=r"g.yaml line 3, key 'seedz': unknown key"):
        load_grid(path)
    path.write_text("protocols: [synthetic_universal]\ndetectors: [sam]\nrun: {limit: 10}\n")
    with pytest.raises(ConfigError, match=r"run.limit makes every cell a partial run; mark the grid `partial: true`"):
        load_grid(path)
    for body, match in [("detectors: [sam, sam]", "detectors lists a value twice"),
                        ("detectors: [sam]\nsettings: {rho: 1}\noverrides: {rho: [0, 1]}", "'rho' is both a fixed"),
                        ("detectors: [sam]\nexecutor: {nodes_per_cell: 2}", "nodes_per_cell > 1 needs the slurm"),
                        ("detectors: [sam]\nexecutor: {kind: ray}", "key 'executor.kind'")]:
        path.write_text("protocols: [synthetic_universal]\n" + body + "\n")
        with pytest.raises(ConfigError, match=match):
            load_grid(path)


def test_cell_names_are_functions_of_the_cell():
    assert cell_name(0, None, {}, {}) == "s0"
    assert [cell_name(1, None, {"rho": r}, {}) for r in (0, 0.05, 1e-5)] == ["rho0-s1", "rho0.05-s1", "rho1e-05-s1"]
    assert cell_name(2, "no_rrm", {"lr": 0.001}, {"tune": "norm"}) == "no_rrm-lr0.001-tunenorm-s2"
    odd = cell_name(0, None, {}, {"backbone": "timm:vit@none"})
    assert re.fullmatch(r"backbonetimm_vit_none-s0-[0-9a-f]{8}", odd)
    assert odd != cell_name(0, None, {}, {"backbone": "timm:vit/none"})  # sanitised alike, told apart by the hash
    assert len(cell_name(0, None, {"k" * 200: 1}, {})) <= 80


def test_flag_form_axes_settings_and_file_overrides(tmp_path, capsys):
    proto = write_tiny_protocol(tmp_path)
    code, out, err = run_cli(["grid", "--protocol", str(proto), "--detector", "sam,clip_linear", "--seeds", "0,1",
                              "-o", "epochs=1", "-o", "lr=0.1,0.01", "--out", str(tmp_path / "g"), "--dry-run"],
                             capsys)
    assert code == 0, err
    cells = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert cells == [f"tiny/{d}/lr{lr}-epochs1-s{s}" for d in ("sam", "clip_linear") for lr in (0.1, 0.01)
                     for s in (0, 1)]
    assert "--run-name lr0.1-epochs1-s0" in out and "-o epochs=1 -o lr=0.1" in out and not (tmp_path / "g").exists()
    path = tmp_path / "grid.yaml"
    path.write_text(f"protocols: [{proto.name}]\ndetectors: [clip_linear]\nseeds: protocol\n"
                    "overrides: {c_values: [[0.1, 1.0], [10.0]]}\nexecutor: {kind: slurm, max_concurrent: 3}\n")
    grid = load_grid(path)
    assert grid.protocols == [str(proto)] and grid.seeds == "protocol" and grid.overrides["c_values"] == [[0.1, 1.0], [10.0]]
    code, out, err = run_cli(["grid", str(path), "--executor", "local", "--dry-run"], capsys)
    assert code == 0, err
    assert "4 cells on the local executor" in out  # the flag replaced the file's executor; seeds: the protocol's 0, 1
    assert re.search(r"tiny/clip_linear/c_values_0.1__1.0_-s1-[0-9a-f]{8}  submit", out)
    assert "-o 'c_values=[0.1, 1.0]'" in out  # a command line that can be pasted


def test_the_hash_covers_what_cells_compute_not_where_they_run(tmp_path):
    base = plan_grid(grid_of(tmp_path, seeds=[0, 1]))
    assert [c.id for c in base.cells] == ["tiny/clip_linear/s0", "tiny/clip_linear/s1"]
    same = plan_grid(grid_of(tmp_path, seeds=[0, 1], run={"threads": 1, "workers": "0"},
                             executor={"kind": "slurm", "partition": "p", "time_limit_min": 5}))
    assert same.hash == base.hash
    for other in ({"run": {"batch_size": 8}}, {"settings": {"c_values": [1.0]}},
                  {"executor": {"gpus_per_cell": 2}}, {"partial": True, "run": {"limit": 3}}):
        assert plan_grid(grid_of(tmp_path, seeds=[0, 1], **other)).hash != base.hash, other


def test_bad_cells_are_refused_before_anything_is_submitted_naming_the_cell(tmp_path, capsys):
    proto = write_tiny_protocol(tmp_path)
    out = tmp_path / "g"
    cases = [(["--detector", "clip_linear,samm"], r"cell tiny/samm/s0 .*Unknown detector 'samm'.*Did you mean 'sam'"),
             (["--detector", "sam", "-o", "rhoo=0.1"], r"cell tiny/sam/rhoo0.1-s0 .*Unknown setting 'rhoo'"),
             (["--detector", "sam", "-o", "lr=0.1,-1"], r"cell tiny/sam/lr-1-s0 .*Setting 'lr'.*-1.0"),
             (["--detector", "univfd", "--protocol", "synthetic_universl"], r"Grid protocol 'synthetic_universl'")]
    for args, match in cases:
        code, _, err = run_cli(["grid", "--protocol", str(proto), *args, "--out", str(out)], capsys)
        assert code == 2 and re.search(match, err) and err.count("\n") == 1, err
    folder = folder_protocol(tmp_path / "fold.yaml")
    code, _, err = run_cli(["grid", "--protocol", str(folder), "--detector", "clip_linear", "--out", str(out),
                            "--data-root", str(tmp_path / "nodata")], capsys)
    assert code == 2 and "cell fold/clip_linear/s0 (protocol fold" in err and "every other cell of protocol fold" in err
    assert not out.exists()


def test_seeds_threads_and_a_test_set_inside_training_are_refused_before_submission(tmp_path, capsys):
    """What `bench run` refuses (issue 17 items 3, 7, 12) is refused by the grid, before any cell."""
    proto, out = write_tiny_protocol(tmp_path), tmp_path / "g"
    base = ["grid", "--protocol", str(proto), "--detector", "clip_linear", "--out", str(out)]
    for args, match in [(["--seeds=-1"], "key 'seeds': the list has seed -1, outside 0..4294967295"),
                        (["--seeds", "4294967296"], "has seed 4294967296, outside"),
                        (["--seeds", "0,0"], "lists seed 0 twice"),
                        (["--threads", "100000"], r"run.threads \(--threads\) 100000 is more than the \d+ core"),
                        (["--threads", "9", "--executor", "slurm", "--cpus-per-cell", "8"],
                         "run.threads .*9 is more than executor.cpus_per_cell 8")]:
        code, _, err = run_cli([*base, *args], capsys)
        assert code == 2 and re.search(match, err) and err.count("\n") == 1, (args, err)
    path = tmp_path / "g.yaml"
    path.write_text(f"protocols: [{proto}]\ndetectors: [clip_linear]\nseeds: [0, -5]\n")
    with pytest.raises(ConfigError, match=r"g.yaml line 3, key 'seeds': the list has seed -5"):
        load_grid(path)
    folder = folder_protocol(tmp_path / "fold.yaml")
    text = folder.read_text().replace("test: {t: {source: ds, split: test}}", "test: {t: {source: again, split: train}}")
    folder.write_text(text.replace("sources: {ds: {type: folder, root: ds, layout: \"{split}/{label}\"}}",
                                   "sources: {ds: {type: folder, root: ds, layout: \"{split}/{label}\"}, "
                                   "again: {type: folder, root: link, layout: \"{split}/{label}\"}}"))
    data = folder_data(tmp_path / "data")
    (data / "link").symlink_to(data / "ds")  # another name of the same folder: only the data can tell
    code, _, err = run_cli(["grid", "--protocol", str(folder), "--detector", "clip_linear", "--out", str(out),
                            "--data-root", str(data)], capsys)
    assert code == 2 and "every other cell of protocol fold cannot run: Test set 't' shares 8 of its 8" in err, err
    assert not out.exists()


def test_slurm_without_sbatch_is_one_sentence_and_makes_nothing(tmp_path, capsys, monkeypatch):
    proto = write_tiny_protocol(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, _, err = run_cli(["grid", "--protocol", str(proto), "--detector", "clip_linear", "--executor", "slurm",
                            "--out", str(tmp_path / "g")], capsys)
    assert code == 2 and "needs SLURM's `sbatch`, which is not on this machine's PATH" in err
    assert not (tmp_path / "g").exists()


def test_sbatch_reasons_are_slurms_own_words():
    partition = ("sbatch: error: invalid partition specified: nope\n"
                 "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert sbatch_reason(partition) == "Invalid partition name specified; invalid partition specified: nope"
    limit = "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)"
    assert sbatch_reason(limit) == "Requested time limit is invalid (missing or exceeds some limit)"
    assert sbatch_reason("sbatch: unrecognized option '--not-an-option=1'\n") == \
        "sbatch: unrecognized option '--not-an-option=1'"


# -- SLURM → Accelerate ---------------------------------------------------------------------------------
def test_accelerate_flags_from_a_fabricated_two_node_slurm_allocation():
    env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_NODEID": "1", "SLURM_PROCID": "1", "SLURM_GPUS_ON_NODE": "4"}
    assert accelerate_args(env, 4, "bf16") == [
        "--multi_gpu", "--num_processes", "8", "--num_machines", "2", "--mixed_precision", "bf16",
        "--dynamo_backend", "no", "--machine_rank", "1", "--main_process_ip", "gpu07",
        "--main_process_port", str(20000 + 4242 % 40000)]
    first = accelerate_args({**env, "SLURM_NODEID": "0", "MASTER_PORT": "29500"}, 4)
    assert first[first.index("--machine_rank") + 1] == "0" and first[-1] == "29500"
    single = accelerate_args({"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "vm", "SLURM_NNODES": "1"}, 2)
    assert single[:4] == ["--multi_gpu", "--num_processes", "2", "--num_machines"] and "vm" in single
    assert accelerate_args({}, 2) == ["--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                                      "--mixed_precision", "no", "--dynamo_backend", "no"]  # local: no rendezvous
    assert accelerate_args({"MASTER_PORT": "31234"}, 2)[-2:] == ["--main_process_port", "31234"]
    assert launcher(env, 1, 1, None) == ["-m", "bench"]
    assert launcher(env, 1, 2, None)[:2] == ["-m", "accelerate.commands.launch"]


# -- a cell's job ---------------------------------------------------------------------------------------
def test_failure_reason_is_the_last_attempts_error_sentence(tmp_path):
    log = tmp_path / "c.log"
    log.write_text("\n== t job 1: first\nerror: old reason.\n\n== t job 2: second\nepoch 1/3\r 50%\n"
                   "error: Training of sam diverged at step 3; lower -o lr.\n")
    assert failure_reason(log, 2) == "Training of sam diverged at step 3; lower -o lr."
    log.write_text("\n== t job 3\nTraceback (most recent call last):\n  File x\nRuntimeError: simulated crash\n")
    assert failure_reason(log, 1) == "RuntimeError: simulated crash"
    log.write_text("\n== t job 4\nKilled\n")
    assert failure_reason(log, -9).startswith("bench run exited with code -9 and printed no error")


def test_a_cells_job_resumes_an_interrupted_run_and_keeps_a_stray_directory(tmp_path):
    run_dir = tmp_path / "runs" / "tiny" / "sam" / "s0"
    task = CellTask("tiny/sam/s0", str(run_dir), str(tmp_path / "l"), str(tmp_path / "e"), str(tmp_path / "p"),
                    fresh=["run", "fresh"], resume=["run", "--resume", str(run_dir)])
    assert task.arguments() == ["run", "fresh"]
    run_dir.mkdir(parents=True)
    (run_dir / "INCOMPLETE").write_text("")
    assert task.arguments() == ["run", "fresh"] and (run_dir.parent / "s0.interrupted").is_dir()
    run_dir.mkdir()
    (run_dir / "INCOMPLETE").write_text("")
    (run_dir / "config.yaml").write_text("{}")
    assert task.arguments() == ["run", "--resume", str(run_dir)]
    (run_dir / "INCOMPLETE").unlink()
    (run_dir / "results.json").write_text("{}")
    assert task.arguments() is None


def test_states_come_from_run_directories_logs_and_live_processes(tmp_path):
    plan = plan_grid(grid_of(tmp_path, seeds=[0, 1, 2, 3, 4, 5]))
    gdir = GridDir(tmp_path / "g")
    gdir.adopt(plan, plan.grid.executor, "bench-grid-test")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit.local._local",
                              str(gdir.submitit)])
    try:
        ids = [c.id for c in plan.cells]
        jobs = dict(zip(ids, [dead, dead, str(alive.pid), dead, dead]))
        gdir.record_jobs([{"cell": c, "executor": "local", "job_id": j, "submitted_unix": 1.0} for c, j in jobs.items()])
        (gdir.run_dir(ids[0])).mkdir(parents=True)
        (gdir.run_dir(ids[0]) / "results.json").write_text("{}")
        gdir.log(ids[1]).parent.mkdir(parents=True, exist_ok=True)
        gdir.log(ids[1]).write_text("\n== t job: run\nerror: Setting 'lr' diverged; lower it.\n")
        gdir.exits(ids[1]).write_text(json.dumps({"code": 2, "ended": 2.0}) + "\n")
        gdir.log(ids[4]).write_text("\n== t job 9: run\nepoch 3\n\n== t stopped for a requeue (time limit)\n")
        states = cell_states(gdir)
    finally:
        alive.kill()
        alive.wait()
    assert [s.state for s in states] == ["done", "failed", "running", "interrupted", "interrupted", "pending"]
    assert states[1].reason == "Setting 'lr' diverged; lower it." and states[1].failures == 1
    assert states[2].job_id == str(alive.pid) and states[5].job_id is None
    assert "(cancelled, killed or lost)" in states[3].reason and "--max-requeues used up" in states[4].reason


def test_readme_grid_example_is_a_valid_grid(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"^```yaml\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
                 if b.startswith("# grid"))
    path = tmp_path / "leaderboard_grid.yaml"
    path.write_text(block)
    grid = load_grid(path)
    assert grid.executor.kind == "slurm" and grid.detectors and grid.seeds


@pytest.mark.parametrize("name", ["embedded_leaderboard", "corit_ablation"])
def test_committed_grids_expand(name):
    plan = plan_grid(load_grid(ROOT / "examples" / "grids" / f"{name}.yaml"), check_data=False)
    assert len(plan.cells) == {"embedded_leaderboard": 72, "corit_ablation": 42}[name]


# -- end to end on submitit's local executor --------------------------------------------------------------
@pytest.mark.slow
def test_a_local_grid_runs_collects_submits_and_is_idempotent(tmp_path, capsys, monkeypatch):
    from test_leaderboard_submit import registered  # noqa: F401  (the fixture's body, used below)

    proto = write_tiny_protocol(tmp_path)
    out = tmp_path / "g"
    args = ["grid", "--protocol", str(proto), "--detector", "clip_linear", "--seeds", "0,1", "--threads", "1",
            "--batch-size", "8", "--max-concurrent", "2", "--out", str(out)]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "tiny/clip_linear/s0  done" in stdout and "2 cells: 2 done" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["run_dir"] for c in manifest["cells"]] == ["runs/tiny/clip_linear/s0", "runs/tiny/clip_linear/s1"]
    assert all((out / c["log"]).is_file() for c in manifest["cells"])
    jobs = (out / "jobs.jsonl").read_text().splitlines()
    assert len(jobs) == 2
    code, stdout, _ = run_cli(args, capsys)  # issued again: nothing to submit
    assert code == 0 and (out / "jobs.jsonl").read_text().splitlines() == jobs
    code, stdout, _ = run_cli(["grid", "collect", str(out)], capsys)
    assert code == 0 and "auc@unseen" in stdout and "tiny/clip_linear/s1" in stdout
    code, _, err = run_cli([*args[:-4], "--seeds", "0", "--out", str(out)], capsys)
    assert code == 2 and "holds another grid" in err and "that grid has cell tiny/clip_linear/s1" in err
    (out / "manifest.json").rename(out / "elsewhere.json")
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "holds run directories but no manifest.json" in err


@pytest.mark.slow
def test_ctrl_c_leaves_local_cells_running_and_says_how_to_see_them(tmp_path, monkeypatch):
    module = plugin(tmp_path, monkeypatch)
    folder_data(tmp_path / "data")
    proto = folder_protocol(tmp_path / "fold.yaml", epochs=8)
    out = tmp_path / "g"
    env = {**os.environ, "SLOW_STEP_S": "0.5"}
    command = [sys.executable, "-m", "bench", "grid", "--protocol", str(proto), "--detector", "slow_linear",
               "--plugin", module, "-o", "epochs=8", "--data-root", str(tmp_path / "data"), "--threads", "1",
               "--batch-size", "8", "--out", str(out)]
    grid = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "jobs.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(grid.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
        _, err = grid.communicate(timeout=60)
    finally:
        unregister_plugin()
    assert grid.returncode == 130
    assert f"bench grid status {out}" in err and f"bench grid cancel {out}" in err
    assert [s.state for s in cell_states(GridDir(out))] == ["running"]
    deadline = time.monotonic() + 120
    while cell_states(GridDir(out))[0].state == "running" and time.monotonic() < deadline:
        time.sleep(1)
    assert [s.state for s in cell_states(GridDir(out))] == ["done"]


@pytest.mark.slow
def test_a_failed_cell_stops_alone_and_issue_does_not_retry_it_by_default(tmp_path, monkeypatch):
    module = plugin(tmp_path, monkeypatch)
    try:
        proto = write_tiny_protocol(tmp_path)
        grid = parse_grid({"protocols": [str(proto)], "detectors": ["slow_linear"], "overrides": {"lr": [0.5, 1e30]},
                           "run": {"threads": 1, "batch_size": 8, "plugins": [module]},
                           "executor": {"max_concurrent": 2}}, "test")
        plan = plan_grid(grid)
        outcome = issue(plan, GridDir(tmp_path / "g"), say=lambda _: None)
    finally:
        unregister_plugin()
    states = {s.cell: s for s in outcome.states}
    assert states["tiny/slow_linear/lr0.5-s0"].state == "done"
    failed = states["tiny/slow_linear/lr1e30-s0"]
    assert failed.state == "failed" and "diverged" in failed.reason and failed.failures == 1
    with pytest.raises(GridError):
        from bench.grid import submit_cells

        submit_cells(GridDir(tmp_path / "g"), tmp_path / "lb")


@pytest.mark.slow
def test_a_cell_with_two_processes_runs_under_accelerate_launch(tmp_path):
    proto = write_tiny_protocol(tmp_path)
    plan = plan_grid(parse_grid({"protocols": [str(proto)], "detectors": ["clip_linear"],
                                 "run": {"threads": 1, "batch_size": 8, "cpu": True},
                                 "executor": {"gpus_per_cell": 2}}, "test"))
    gdir = GridDir(tmp_path / "g")
    assert issue(plan, gdir, say=lambda _: None).complete
    result = json.loads((gdir.run_dir("tiny/clip_linear/s0") / "results.json").read_text())
    assert result["env"]["num_processes"] == 2
    assert "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1" in result["env"]["launch"]
