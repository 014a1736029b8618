"""bench.leaderboard on result files generated here (never the committed leaderboard): ranking and pages."""

from __future__ import annotations

import copy
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from board import board, commit, make_result, predictions

from bench.errors import BenchError
from bench.leaderboard import HEADER, LeaderboardError, build, check_fresh, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lb(tmp_path):
    """Three detectors without stored predictions (as results submitted before predictions were kept)."""
    lb = tmp_path / "leaderboard"
    for seed, sep in enumerate([0.5, 1.0, 2.0]):
        commit(lb, make_result("clip_linear", seed, sep))
    for seed in range(2):
        commit(lb, make_result("sam", seed, 0.2))
    commit(lb, make_result("corit", 0, 3.0))
    return lb


def index(lb: Path) -> dict:
    return json.loads(render(lb)[lb / "index.json"])["protocols"][0]


def stored(lb: Path, detector: str, section: str, name: str, metric: str) -> list[float]:
    return [json.loads(p.read_text())[section][name][metric]
            for p in sorted((lb / "results" / "tiny" / detector).glob("*.json"))]


def test_aggregates_mean_and_sample_std_over_seeds(lb):
    clip = next(e for e in index(lb)["entries"] if e["detector"] == "clip_linear")
    aucs = stored(lb, "clip_linear", "metrics", "blend_ellipse", "auc")
    stat = clip["metrics"]["blend_ellipse"]["auc"]
    assert stat["seeds"] == 3 and clip["seeds"] == [0, 1, 2]
    assert stat["mean"] == pytest.approx(statistics.fmean(aucs), abs=1e-12)
    assert stat["std"] == pytest.approx(statistics.stdev(aucs), abs=1e-12)  # ddof=1
    assert stat["lo"] is None and clip["intervals"] == "none"  # no predictions: no interval, never a NaN
    assert (stat["seed_min"], stat["seed_max"]) == (min(aucs), max(aucs))
    assert clip["rank_interval"] is None and clip["could_be_first"] is None  # untested without predictions
    assert "n_real" not in clip["groups"]["unseen"]
    unseen = stored(lb, "clip_linear", "groups", "unseen", "auc")
    page = render(lb)[lb / "tiny.md"]
    assert f"{statistics.fmean(unseen):.3f} ± {statistics.stdev(unseen):.3f}" in page
    corit = next(e for e in index(lb)["entries"] if e["detector"] == "corit")
    assert corit["primary"]["std"] is None  # one seed: the page shows the mean alone
    assert f"{corit['primary']['mean']:.3f} |" in page and not re.search(r"\bnan\b", page, re.IGNORECASE)
    assert "† the row's runs have no stored predictions" in page


def test_ranking_follows_higher_is_better(lb):
    entries = index(lb)["entries"]
    assert [(e["rank"], e["detector"]) for e in entries] == [(1, "corit"), (2, "clip_linear"), (3, "sam")]
    for path in (lb / "results").rglob("*.json"):  # rank the same runs by EER: lower is better
        result = json.loads(path.read_text())
        result["protocol"]["primary"] = "eer@unseen"
        path.write_text(json.dumps(result))
    assert [e["detector"] for e in index(lb)["entries"]] == ["corit", "clip_linear", "sam"]
    assert "(lower is better)" in render(lb)[lb / "tiny.md"]


def test_equal_means_share_a_rank(tmp_path):
    lb = tmp_path / "lb"
    for name, sep in [("a", 1.0), ("b", 2.0), ("c", 1.0)]:
        commit(lb, make_result(name, 0, frame=predictions(sep, 0)))
    assert [(e["rank"], e["detector"]) for e in index(lb)["entries"]] == [(1, "b"), (2, "a"), (2, "c")]


@pytest.mark.parametrize(("over", "match"), [
    ({"partial": True, "partial_reasons": ["--limit 3"]}, "partial run.*--limit 3"),
    ({"status": "failed"}, "status 'failed'"),
    ({"schema_version": 99}, "schema_version 99.*upgrade"),
])
def test_bad_results_refused_naming_the_file(lb, over, match):
    path = commit(lb, make_result("sam", 5, **over))
    with pytest.raises(LeaderboardError, match=match) as info:
        render(lb)
    assert str(path) in str(info.value) and issubclass(LeaderboardError, BenchError)


def test_bad_primary_refused(tmp_path):
    result = make_result()
    result["protocol"]["primary"] = "auc@nowhere"
    commit(tmp_path / "lb", result)
    with pytest.raises(LeaderboardError, match="metric@group or metric@test"):
        render(tmp_path / "lb")


def test_protocol_sha_mismatch_refused_naming_both_files(lb):
    other = make_result("sam", 7)
    other["protocol"]["sha256"] = "b" * 64
    path = commit(lb, other)
    with pytest.raises(LeaderboardError, match="sha256 differ") as info:
        render(lb)
    assert str(path) in str(info.value) and "clip_linear" in str(info.value)


def test_new_protocol_version_is_a_separate_table(lb):
    newer = make_result("sam", 0, run_id="v2-run")
    newer["protocol"].update(version=2, sha256="b" * 64)
    commit(lb, newer)
    assert [t["version"] for t in json.loads(render(lb)[lb / "index.json"])["protocols"]] == [2, 1]
    page = render(lb)[lb / "tiny.md"]
    assert page.index("tiny v2") < page.index("tiny v1")


def test_duplicate_seed_refused(lb):
    commit(lb, make_result("sam", 1, run_id="again-s1"))
    with pytest.raises(LeaderboardError, match="both seed 1 of sam"):
        render(lb)


def test_misplaced_file_refused(lb):
    path = lb / "results" / "tiny" / "corit" / "x.json"
    path.write_text(json.dumps(make_result("sam", 9)))
    with pytest.raises(LeaderboardError, match="move it to results/tiny/sam/"):
        render(lb)


def test_page_is_compact_and_says_how_to_reproduce(lb):
    page = render(lb)[lb / "tiny.md"]
    lines = page.splitlines()
    assert lines[0] == HEADER
    header = next(line for line in lines if line.startswith("| rank"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "rank", "detector", "auc@unseen", "rank interval", "could be 1st", "p vs 1st (raw / Holm)", "seed range", "seeds",
        "n (real / fake)", "trainable params"]
    assert " 1,281 |" in page  # trainable params, exact with thousands separators
    for heading in ("### auc per test set", "### Ranking metrics per group", "### Deployment metrics per group",
                    "### Cost"):
        assert heading in page
    assert "real_acc" in page and "acc_val_thr" in page and "not recorded" in page
    assert f"sha256 `{index(lb)['sha256'][:12]}`" in page and "`abc1234`" in page
    assert "2026-11-20 to 2026-11-22" in page
    assert "`bench run --protocol tiny --detector clip_linear --seeds 0,1,2`" in page  # no machine path
    assert "forgery-bench 0.1.0" in page and "none (the detector's defaults" in page
    assert "/data/runs" not in page


def test_build_is_deterministic_and_check_fresh(lb):
    written = build(lb)
    texts = [p for p in written if p.suffix != ".png"]
    assert texts == sorted([lb / "index.json", lb / "tiny.md"])
    assert lb / "figures/tiny/v1/heatmap.png" in written
    first = {p: p.read_text() for p in texts}
    assert check_fresh(lb) == []
    build(lb)
    assert {p: p.read_text() for p in texts} == first
    moved = lb.parent / "elsewhere" / "board"  # no machine paths: the same results render the same bytes
    shutil.copytree(lb / "results", moved / "results")
    assert {p.name: text for p, text in render(moved).items()} == {p.name: t for p, t in first.items()}
    (lb / "figures/tiny/v1/heatmap.png").unlink()
    assert check_fresh(lb) == ["leaderboard/figures/tiny/v1/heatmap.png"]
    commit(lb, make_result("sam", 3, 0.9))
    assert check_fresh(lb) == ["leaderboard/figures/tiny/v1/heatmap.png", "leaderboard/index.json",
                               "leaderboard/tiny.md"]


def test_readme_block_replacement(lb):
    readme = lb.parent / "README.md"
    readme.write_text("# Title\n\nintro\n<!-- leaderboard:start -->\nold table\n<!-- leaderboard:end -->\nafter\n")
    build(lb, readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n<!-- leaderboard:start -->\n")
    assert text.endswith("<!-- leaderboard:end -->\nafter\n") and "old table" not in text
    assert "[tiny](leaderboard/tiny.md)" in text and "no stored predictions" in text
    assert text.index("corit") < text.index("clip_linear") < text.index("| 3 ")
    assert check_fresh(lb, readme) == []
    build(lb, readme)
    assert readme.read_text() == text  # idempotent
    readme.write_text("# no markers\n")
    with pytest.raises(LeaderboardError, match="leaderboard:start"):
        render(lb, readme)


def test_empty_leaderboard(tmp_path):
    files = render(tmp_path / "lb")
    assert json.loads(files[tmp_path / "lb" / "index.json"]) == {"schema_version": 3, "protocols": []}


def test_no_module_of_the_package_imports_torch():
    code = ("import importlib, pkgutil, sys, bench.leaderboard as lb\n"
            "for m in pkgutil.walk_packages(lb.__path__, 'bench.leaderboard.'): importlib.import_module(m.name)\n"
            "import bench.analysis.plots, bench.cli.results, bench.protocol.keys\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print(len(list(pkgutil.walk_packages(lb.__path__))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10  # every module was imported


def test_results_are_not_mutated_by_build(tmp_path):
    lb = board(tmp_path / "lb", {"a": 1.0}, seeds=(0,))
    path = next((lb / "results").rglob("*.json"))
    before = copy.deepcopy(json.loads(path.read_text()))
    build(lb)
    assert json.loads(path.read_text()) == before


def test_the_legend_says_the_oracle_acc_and_ece_intervals_are_of_upward_biased_statistics(tmp_path):
    lb = board(tmp_path / "lb", {"a": 0.6, "b": 1.2}, seeds=(0,))
    page = render(lb)[lb / "tiny.md"]
    assert ("The [lo, hi] of oracle_acc and ece is the same percentile interval as elsewhere, of statistics that "
            "resampling biases upward") in page
    cells = [g[m] for e in index(lb)["entries"] for g in e["groups"].values() for m in ("oracle_acc", "ece")]
    assert cells and sum((c["lo"] + c["hi"]) / 2 > c["mean"] for c in cells) > len(cells) / 2  # what it warns of
