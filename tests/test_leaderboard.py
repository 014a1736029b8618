"""Tests of bench.leaderboard on result files generated here (never the committed leaderboard)."""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.leaderboard import HEADER, LeaderboardError, build, check_fresh, render, submit

TESTS = ["upsample_nearest", "blend_soft", "jpeg_double"]
GROUPS = {"in_domain": ["upsample_nearest"], "unseen": ["blend_soft", "jpeg_double"]}


def make_result(detector="clip_linear", seed=0, auc=0.8, eer=0.2, primary="auc@unseen", **over):
    """A schema-1 results.json dict whose metrics are shifted by ``auc`` and ``eer``."""
    per_test = {
        t: {
            "auc": auc + 0.01 * i,
            "ap": auc,
            "eer": eer + 0.01 * i,
            "acc": 0.7,
            "real_acc": 0.6,
            "fake_acc": 0.8,
            "n_real": 150,
            "n_fake": 150,
        }
        for i, t in enumerate(TESTS)
    }
    groups = {}
    for g, members in GROUPS.items():
        keys = [k for k in per_test[members[0]] if not k.startswith("n_")]
        groups[g] = {k: statistics.fmean(per_test[m][k] for m in members) for k in keys}
        groups[g].update(n_real=150 * len(members), n_fake=150 * len(members))
    result = {
        "schema_version": 1,
        "run_id": f"20261125-17300{seed}-s{seed}",
        "status": "complete",
        "partial": False,
        "partial_reasons": [],
        "protocol": {
            "name": "synthetic_universal",
            "version": 1,
            "sha256": "a" * 64,
            "primary": primary,
            "metrics": ["auc", "ap", "eer", "acc"],
            "tests": TESTS,
            "groups": GROUPS,
        },
        "detector": {
            "name": detector,
            "version": "1",
            "paper": None,
            "distribution": "forgery-bench 0.1.0",
            "config": {},
            "config_sha256": "c" * 64,
            "params_total": 3_400_000,
            "params_trainable": 1281,
        },
        "seed": seed,
        "selection": {"rule": "best:auc", "epoch": 2, "val": {"auc": 0.9}},
        "metrics": per_test,
        "groups": groups,
        "data": {"train": {"fingerprint": "sha256:0", "n": 1000}},
        "skipped_images": {"count": 0, "ids": []},
        "env": {
            "bench": "0.1.0",
            "git_sha": "abc1234",
            "git_dirty": False,
            "python": "3.11.7",
            "device": "cpu",
            "num_processes": 1,
            "mixed_precision": "no",
        },
        "timing": {"started_at": f"2026-11-2{seed}T17:30:00+00:00", "finished_at": "x", "total_seconds": 2.0},
        "command": f"bench run --protocol synthetic_universal --detector {detector} --seed {seed}",
    }
    for key, value in over.items():
        result[key] = value
    return result


def write_run(tmp_path: Path, result: dict) -> Path:
    run = tmp_path / "runs" / result["detector"]["name"] / result["run_id"]
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(result))
    (run / "predictions.csv.gz").write_bytes(b"not copied")
    return run


def commit(lb: Path, result: dict) -> Path:
    path = (
        lb / "results" / result["protocol"]["name"] / result["detector"]["name"] / f"{result['run_id']}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


@pytest.fixture
def lb(tmp_path):
    lb = tmp_path / "leaderboard"
    for seed, (auc, eer) in enumerate([(0.70, 0.30), (0.80, 0.25), (0.95, 0.10)]):
        commit(lb, make_result("clip_linear", seed, auc, eer))
    for seed in range(2):
        commit(lb, make_result("sam", seed, 0.6, 0.05))
    commit(lb, make_result("corit", 0, 0.9, 0.4))
    return lb


def index(lb: Path) -> dict:
    return json.loads(render(lb)[lb / "index.json"])["protocols"][0]


def test_submit_copies_only_results_and_refuses_overwrite(tmp_path):
    run = write_run(tmp_path, make_result())
    dest = submit(run, tmp_path / "lb")
    assert dest == tmp_path / "lb/results/synthetic_universal/clip_linear/20261125-173000-s0.json"
    assert json.loads(dest.read_text()) == json.loads((run / "results.json").read_text())
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]
    with pytest.raises(LeaderboardError, match="already exists"):
        submit(run, tmp_path / "lb")


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"partial": True, "partial_reasons": ["skipped 3 images", "budget hit"]}, "partial run.*budget hit"),
        ({"status": "failed"}, "status 'failed'"),
        ({"schema_version": 2}, "schema_version 2"),
        ({"run_id": "../evil"}, "unfit for file names"),
    ],
)
def test_submit_refuses_bad_runs(tmp_path, over, match):
    run = write_run(tmp_path, make_result(**over))
    with pytest.raises(LeaderboardError, match=match):
        submit(run, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()
    assert issubclass(LeaderboardError, BenchError)


def test_submit_missing_file_and_key(tmp_path):
    with pytest.raises(LeaderboardError, match="does not exist"):
        submit(tmp_path, tmp_path / "lb")
    broken = make_result()
    del broken["protocol"]["sha256"]
    with pytest.raises(LeaderboardError, match="'protocol.sha256'"):
        submit(write_run(tmp_path, broken), tmp_path / "lb")


def test_aggregates_mean_and_sample_std_over_three_seeds(lb):
    clip = next(e for e in index(lb)["entries"] if e["detector"] == "clip_linear")
    aucs = [0.70 + 0.01, 0.80 + 0.01, 0.95 + 0.01]  # blend_soft is test 1: auc + 0.01
    stat = clip["metrics"]["blend_soft"]["auc"]
    assert stat["n"] == 3 and clip["seeds"] == [0, 1, 2]
    assert stat["mean"] == pytest.approx(statistics.fmean(aucs), abs=1e-12)
    assert stat["std"] == pytest.approx(statistics.stdev(aucs), abs=1e-12)  # ddof=1
    assert stat["std"] == pytest.approx(0.125830573921179, abs=1e-12)
    assert clip["primary"]["mean"] == pytest.approx(statistics.fmean([0.715, 0.815, 0.965]))
    assert "n_real" not in clip["groups"]["unseen"]
    page = render(lb)[lb / "synthetic_universal.md"]
    assert "0.832 ± 0.126" in page  # unseen mean auc of clip_linear
    corit = next(e for e in index(lb)["entries"] if e["detector"] == "corit")
    assert corit["primary"]["std"] is None  # one seed: the page shows the mean alone
    assert "0.915 |" in page and "0.915 ±" not in page


def test_ranking_follows_higher_is_better(lb):
    entries = index(lb)["entries"]
    assert [(e["rank"], e["detector"]) for e in entries] == [(1, "corit"), (2, "clip_linear"), (3, "sam")]
    for path in (lb / "results").rglob("*.json"):  # rank the same runs by EER: lower is better
        result = json.loads(path.read_text())
        result["protocol"]["primary"] = "eer@unseen"
        path.write_text(json.dumps(result))
    entries = index(lb)["entries"]
    assert [e["detector"] for e in entries] == ["sam", "clip_linear", "corit"]
    assert "(lower is better)" in render(lb)[lb / "synthetic_universal.md"]


def test_ranking_by_a_test_set_and_ties(tmp_path):
    lb = tmp_path / "lb"
    commit(lb, make_result("a", 0, 0.7, 0.1, primary="auc@jpeg_double"))
    commit(lb, make_result("b", 0, 0.9, 0.1, primary="auc@jpeg_double"))
    commit(lb, make_result("c", 0, 0.7, 0.1, primary="auc@jpeg_double"))
    entries = index(lb)["entries"]
    assert [(e["rank"], e["detector"]) for e in entries] == [(1, "b"), (2, "a"), (2, "c")]


def test_bad_primary_refused(tmp_path):
    lb = tmp_path / "lb"
    commit(lb, make_result(primary="auc@nowhere"))
    with pytest.raises(LeaderboardError, match="metric@group or metric@test"):
        render(lb)


def test_partial_result_in_leaderboard_refused(lb):
    path = commit(lb, make_result("sam", 5, partial=True, partial_reasons=["3 images skipped"]))
    with pytest.raises(LeaderboardError, match="partial run.*3 images skipped") as info:
        build(lb)
    assert str(path) in str(info.value)


def test_protocol_sha_mismatch_refused_naming_both_files(lb):
    other = make_result("sam", 7)
    other["protocol"]["sha256"] = "b" * 64
    path = commit(lb, other)
    with pytest.raises(LeaderboardError, match="sha256 differ") as info:
        render(lb)
    assert str(path) in str(info.value) and "clip_linear" in str(info.value)


def test_new_protocol_version_is_a_separate_table(lb):
    newer = make_result("sam", 0)
    newer["protocol"].update(version=2, sha256="b" * 64)
    newer["run_id"] = "v2-run"
    commit(lb, newer)
    tables = json.loads(render(lb)[lb / "index.json"])["protocols"]
    assert [t["version"] for t in tables] == [2, 1]
    page = render(lb)[lb / "synthetic_universal.md"]
    assert page.index("synthetic_universal v2") < page.index("synthetic_universal v1")


def test_duplicate_seed_refused(lb):
    dup = make_result("sam", 1)
    dup["run_id"] = "again-s1"
    commit(lb, dup)
    with pytest.raises(LeaderboardError, match="both seed 1 of sam"):
        render(lb)


def test_misplaced_file_refused(lb):
    result = make_result("sam", 9)
    path = lb / "results" / "synthetic_universal" / "corit" / "x.json"
    path.write_text(json.dumps(result))
    with pytest.raises(LeaderboardError, match="move it to results/synthetic_universal/sam/"):
        render(lb)


def test_page_content(lb):
    page = render(lb)[lb / "synthetic_universal.md"]
    lines = page.splitlines()
    assert lines[0] == HEADER
    assert "synthetic_universal v1" in page and "auc@unseen" in page
    header = next(line for line in lines if line.startswith("| rank"))
    for column in ["detector", "trainable params", "in_domain (mean)", "unseen (mean)", *TESTS, "seeds"]:
        assert column in header
    assert " 1,281 |" in page  # trainable params, exact with thousands separators
    assert "### All metrics per group" in page and "real_acc" in page
    assert "sha256 `aaaaaaaaaaaa`" in page and "`abc1234`" in page
    assert "2026-11-20 to 2026-11-22" in page
    assert "bench run --protocol synthetic_universal --detector corit --seeds 0" in page
    assert "bench leaderboard build" in page


def test_build_is_deterministic_and_check_fresh(lb):
    written = build(lb)
    assert written == sorted([lb / "index.json", lb / "synthetic_universal.md"])
    first = {p: p.read_text() for p in written}
    assert check_fresh(lb) == []
    build(lb)
    assert {p: p.read_text() for p in written} == first
    moved = lb.parent / "elsewhere" / "board"  # no machine paths: the same results render the same bytes
    shutil.copytree(lb / "results", moved / "results")
    assert {p.name: text for p, text in render(moved).items()} == {p.name: t for p, t in first.items()}
    commit(lb, make_result("sam", 3, 0.99, 0.0))
    assert check_fresh(lb) == ["leaderboard/index.json", "leaderboard/synthetic_universal.md"]


def test_readme_block_replacement(lb):
    readme = lb.parent / "README.md"
    readme.write_text(
        "# Title\n\nintro\n<!-- leaderboard:start -->\nold table\n<!-- leaderboard:end -->\nafter\n"
    )
    build(lb, readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n<!-- leaderboard:start -->\n")
    assert text.endswith("<!-- leaderboard:end -->\nafter\n") and "old table" not in text
    assert "[synthetic_universal](leaderboard/synthetic_universal.md)" in text
    assert text.index("corit") < text.index("clip_linear") < text.index("| 3 ")
    assert check_fresh(lb, readme) == []
    build(lb, readme)
    assert readme.read_text() == text  # idempotent
    readme.write_text("# no markers\n")
    with pytest.raises(LeaderboardError, match="leaderboard:start"):
        render(lb, readme)


def test_empty_leaderboard(tmp_path):
    files = render(tmp_path / "lb")
    assert json.loads(files[tmp_path / "lb" / "index.json"]) == {"schema_version": 1, "protocols": []}


def test_does_not_import_torch():
    code = "import bench.leaderboard, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_fixture_is_not_mutated_by_render(lb):
    path = next((lb / "results").rglob("*.json"))
    before = copy.deepcopy(json.loads(path.read_text()))
    build(lb)
    assert json.loads(path.read_text()) == before


def test_committed_commands_carry_no_machine_paths():
    from bench.results import portable_command

    assert portable_command("bench run --protocol p --out /data/runs --detector d --data-root=/mnt/x --seeds 0") == \
        "bench run --protocol p --detector d --seeds 0"
