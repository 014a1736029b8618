"""``bench leaderboard submit``: results and predictions stored together, only for registered protocols."""

from __future__ import annotations

import gzip
import importlib
import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
from board import TINY, make_result, predictions, write_run_dir
from conftest import TINY_PROTOCOL

from bench.leaderboard import LeaderboardError, build, read_predictions, submit
from bench.leaderboard.consistency import check_predictions, predictions_frame
from bench.leaderboard.submit import registered_command
from bench.metrics import compute_metrics
from bench.plugin.registry import PROTOCOLS


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """The tiny protocol shipped by a protocol pack registered for this test."""
    pack = tmp_path / "site" / "tiny_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text("")
    (pack / "tiny.yaml").write_text(TINY_PROTOCOL.format(name="tiny"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    PROTOCOLS.add("tiny_pack", importlib.import_module("tiny_pack"))
    yield pack
    PROTOCOLS.remove("tiny_pack")
    sys.modules.pop("tiny_pack", None)


def run_dir(tmp_path, seed=0, labelled=True, **over):
    frame = predictions(1.0, seed)
    return write_run_dir(tmp_path / "runs", make_result("clip_linear", seed, frame=frame, **over), frame,
                         labelled=labelled)


def test_schema_1_prediction_files_get_their_test_set_column(tmp_path, registered):
    dest = submit(run_dir(tmp_path, labelled=False), tmp_path / "lb")
    with gzip.open(dest.with_name(dest.stem + ".predictions.csv.gz"), "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "test_set,index,source,id,subset,group,label,score"
    assert lines[1].startswith("upsample_nearest,0,synth,test/upsample_nearest/0/000000,")


def test_an_interrupted_run_is_refused(tmp_path, registered):
    run = run_dir(tmp_path)
    (run / "INCOMPLETE").write_text("started")
    with pytest.raises(LeaderboardError, match="unfinished run.*--resume"):
        submit(run, tmp_path / "lb")


def test_submit_stores_results_and_predictions_and_refuses_overwrite(tmp_path, registered):
    run = run_dir(tmp_path)
    dest = submit(run, tmp_path / "lb")
    assert dest == tmp_path / "lb/results/tiny/clip_linear/20261125-173000-s0.json"
    preds = dest.with_name("20261125-173000-s0.predictions.csv.gz")
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([preds.name, dest.name])
    stored = json.loads(dest.read_text())
    assert stored["command"] == "bench run --protocol tiny --detector clip_linear --seeds 0"  # no --out path
    assert stored["protocol"]["definition"] == TINY.model_dump(mode="json")
    with gzip.open(preds, "rt") as fh:
        text = fh.read()
    assert text.splitlines()[0] == "index,source,id,subset,group,label,score,test_set,seed,run_id"
    for test in TINY.test:  # the run's own lines, verbatim
        with gzip.open(run / "predictions" / f"{test}.csv.gz", "rt") as fh:
            own = fh.read().splitlines()[1:]
        assert all(line in text for line in own)
    with pytest.raises(LeaderboardError, match="already exists"):
        submit(run, tmp_path / "lb")
    again = tmp_path / "lb2"
    submit(run, again)  # the same run gives the same bytes (gzip without a timestamp)
    assert (again / preds.relative_to(tmp_path / "lb")).read_bytes() == preds.read_bytes()
    frame = read_predictions(tmp_path / "lb")
    assert len(frame) == 3 * 80 and set(frame["test_set"]) == set(TINY.test)
    assert build(tmp_path / "lb")  # and the board builds with intervals from them
    assert "[0." in (tmp_path / "lb" / "tiny.md").read_text()


def test_unregistered_protocol_is_refused(tmp_path):
    with pytest.raises(LeaderboardError, match="protocol 'tiny', which is not registered.*bench report"):
        submit(run_dir(tmp_path), tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_a_local_file_shadowing_a_registered_name_is_refused(tmp_path, registered):
    result = make_result("clip_linear", 0, frame=predictions(1.0, 0))
    result["protocol"]["sha256"] = "f" * 64
    run = write_run_dir(tmp_path / "runs", result, predictions(1.0, 0), config=False)
    with pytest.raises(LeaderboardError, match="hash ffffffffffff differs from the registered one.*shadows it"):
        submit(run, tmp_path / "lb")


def test_another_version_than_the_registered_one_is_refused(tmp_path, registered):
    result = make_result("clip_linear", 0, frame=predictions(1.0, 0))
    result["protocol"]["version"] = 2
    run = write_run_dir(tmp_path / "runs", result, predictions(1.0, 0), config=False)
    with pytest.raises(LeaderboardError, match="registered tiny is v1; rerun it under v1"):
        submit(run, tmp_path / "lb")


@pytest.mark.parametrize(("over", "match"), [
    ({"partial": True, "partial_reasons": ["--limit 3"]}, "partial run.*--limit 3"),
    ({"status": "failed"}, "status 'failed'"),
    ({"schema_version": 99}, "schema_version 99"),
    ({"run_id": "../evil"}, "unfit for file names"),
])
def test_bad_runs_are_refused(tmp_path, registered, over, match):
    frame = predictions(1.0, 0)
    run = write_run_dir(tmp_path / "runs", {**make_result("clip_linear", 0, frame=frame), **over} | {"run_id": "r"},
                        frame)
    if "run_id" in over:
        (run / "results.json").write_text(json.dumps({**make_result(frame=frame), **over}))
    with pytest.raises(LeaderboardError, match=match):
        submit(run, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_missing_predictions_or_results_are_refused(tmp_path, registered):
    run = run_dir(tmp_path)
    (run / "predictions" / "peaks_p4.csv.gz").unlink()
    with pytest.raises(LeaderboardError, match="no peaks_p4.csv.gz"):
        submit(run, tmp_path / "lb")
    with pytest.raises(LeaderboardError, match="does not exist"):
        submit(tmp_path / "nowhere", tmp_path / "lb")


def test_predictions_that_belong_to_another_run_are_refused_at_build(tmp_path, registered):
    submit(run_dir(tmp_path), tmp_path / "lb")
    path = next((tmp_path / "lb").rglob("*.predictions.csv.gz"))
    frame = pd.read_csv(path)
    frame.iloc[:-1].to_csv(path, index=False)  # one score fewer than the results count
    with pytest.raises(LeaderboardError, match="belongs to another run"):
        build(tmp_path / "lb")


def test_predictions_with_another_runs_scores_are_refused(tmp_path, registered):
    good, other = predictions(3.0, 0), predictions(0.2, 0)  # same images and counts, other scores
    run = write_run_dir(tmp_path / "runs", make_result("clip_linear", 0, frame=good), other)
    with pytest.raises(LeaderboardError, match=r"gives auc = 0\.\d+ on upsample_nearest but its results store "
                                               r"0\.\d+; these are not the scores"):
        submit(run, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_predictions_with_other_counts_are_refused_at_submit(tmp_path, registered):
    frame = predictions(1.0, 1)
    run = write_run_dir(tmp_path / "runs", make_result("clip_linear", 1, frame=frame), frame.iloc[5:])
    with pytest.raises(LeaderboardError, match="35 real and 40 fake scores for upsample_nearest, but its results "
                                               "have 40 and 40; the file belongs to another run"):
        submit(run, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


@pytest.mark.parametrize(("column", "value", "match"), [
    ("seed", 3, "has seed 3 in its rows, but its results are seed 0"),
    ("run_id", "20261125-999999-s0", "has run_id '20261125-999999-s0' in its rows, but its results are run_id"),
])
def test_prediction_rows_of_another_seed_or_run_are_refused(tmp_path, registered, column, value, match):
    run = run_dir(tmp_path)
    path = run / "predictions" / "blend_ellipse.csv.gz"
    pd.read_csv(path).assign(**{column: value}).to_csv(path, index=False)
    with pytest.raises(LeaderboardError, match=match):
        submit(run, tmp_path / "lb")


def test_committed_predictions_with_other_scores_are_refused_at_build(tmp_path, registered):
    submit(run_dir(tmp_path), tmp_path / "lb")
    path = next((tmp_path / "lb").rglob("*.predictions.csv.gz"))
    frame = pd.read_csv(path)
    frame["score"] = frame["score"].to_numpy()[::-1]  # the same counts, scores of other images
    frame.to_csv(path, index=False)
    with pytest.raises(LeaderboardError, match="not the scores the results were computed from"):
        build(tmp_path / "lb")


def test_scores_rounded_to_six_digits_still_match_their_results(tmp_path):
    """Runs write float32 logits with %.6g: ties that rounding creates must not make a run look foreign."""
    rng = np.random.default_rng(0)
    n = 300
    labels = np.repeat([0, 1], n)
    scores = (100 + rng.uniform(0, 0.01, 2 * n) + 0.002 * labels).astype(np.float32)  # saturated, close logits
    videos = np.array([f"v{i // 3}" for i in range(2 * n)])  # three frames per video
    names = ["auc", "ap", "eer", "acc", "video_auc", "oracle_acc"]
    stored = compute_metrics(labels, scores, names, groups=np.char.add("s:", videos))
    path = tmp_path / "t.csv"
    pd.DataFrame({"test_set": "t", "source": "s", "id": videos, "group": videos, "label": labels,
                  "score": scores}).to_csv(path, index=False, float_format="%.6g")  # as bench.run.results writes
    back = predictions_frame(path, path)
    rounded = compute_metrics(labels, back["score"], names, groups=np.char.add("s:", videos))
    assert abs(rounded["auc"] - stored["auc"]) > 1e-3  # a plain 1e-6 tolerance would refuse the run's own file
    result = {"seed": 0, "run_id": "r", "protocol": {"name": "p", "tests": ["t"]}, "metrics": {"t": stored}}
    check_predictions(back, result, path)
    with pytest.raises(LeaderboardError, match="gives auc"):
        check_predictions(back.assign(score=np.round(rng.normal(size=2 * n), 4)), result, path)


def test_rounding_that_ties_only_fakes_still_matches_ap():
    """AP moves when rounding ties two fakes (no real in the tie): seen on a collapsed SAFE run."""
    labels = np.array([0] * 6 + [1] * 6)
    scores = np.array([3.0, -2.5, 0.5, -2.0, -1.5, -1.0, 1.0000001, 1.0000004, 0.2, 0.9, 2.0, -1.2],
                      dtype=np.float32)
    stored = compute_metrics(labels, scores, ["auc", "ap"])
    back = pd.DataFrame({"test_set": "t", "source": "s", "group": [f"i{i}" for i in range(12)], "label": labels,
                         "score": [float(f"{s:.6g}") for s in scores]})  # the two fakes near 1.0 become one value
    assert abs(compute_metrics(labels, back["score"].to_numpy(), ["ap"])["ap"] - stored["ap"]) > 1e-3
    result = {"seed": 0, "run_id": "r", "protocol": {"name": "p", "tests": ["t"]}, "metrics": {"t": stored}}
    check_predictions(back, result, "t.csv")


def test_a_second_run_of_a_stored_seed_is_refused(tmp_path, registered):
    lb, frame = tmp_path / "lb", predictions(1.0, 0)
    submit(write_run_dir(tmp_path / "a", make_result("clip_linear", 0, frame=frame), frame), lb)
    again = write_run_dir(tmp_path / "b", make_result("clip_linear", 0, frame=frame, run_id="20261126-000000-s0"),
                          frame)
    with pytest.raises(LeaderboardError, match=r"already holds seed 0 of clip_linear \(config cccccccc\) on tiny v1; "
                                               "a row counts each seed once"):
        submit(again, lb)
    other = make_result("clip_linear", 0, frame=frame, run_id="20261126-000001-s0")
    other["detector"]["config_sha256"] = "d" * 64  # another config is another row
    submit(write_run_dir(tmp_path / "c", other, frame), lb)
    evaluated = make_result("clip_linear", 0, frame=frame, run_id="20261126-000002-s0",
                            runner={"eval_only": True, "checkpoint": "w.safetensors"})  # so is an eval-only run
    submit(write_run_dir(tmp_path / "d", evaluated, frame), lb)
    build(lb)
    t = json.loads((lb / "index.json").read_text())["protocols"][0]
    assert len(t["entries"]) == 2 and len(t["unranked"]) == 1


def test_a_local_protocol_path_becomes_the_registered_name(tmp_path, registered):
    lb = tmp_path / "lb"
    local = tmp_path / "alice" / "work" / "tiny.yaml"
    run = run_dir(tmp_path, command=f"bench run --protocol {local} --detector clip_linear "
                                    f"--seeds 0 --out {tmp_path / 'runs'}")
    dest = submit(run, lb)
    assert json.loads(dest.read_text())["command"] == "bench run --protocol tiny --detector clip_linear --seeds 0"
    build(lb)
    page = (lb / "tiny.md").read_text()
    assert "`bench run --protocol tiny --detector clip_linear --seeds 0`" in page and str(local.parent) not in page
    assert registered_command("bench run --protocol=../p/tiny.yaml --detector x", "tiny") == (
        "bench run --protocol=tiny --detector x")
    assert registered_command("bench run --proto my.yaml --plugin m", "tiny") == "bench run --protocol tiny --plugin m"


def test_a_run_with_skipped_images_is_stored_and_shown_unranked_with_intervals(tmp_path, registered):
    lb, frame = tmp_path / "lb", predictions(1.0, 0)
    frame.loc[[0, 1, 45], "score"] = np.nan  # two reals and a fake of upsample_nearest were skipped
    reasons = ["3 images skipped with --skip-bad-images"]
    result = make_result("clip_linear", 0, frame=frame, schema_version=2, skipped_images={"count": 3, "ids": {}},
                         origin={"kind": "protocol", "rankable": False, "reasons": reasons})
    dest = submit(write_run_dir(tmp_path / "runs", result, frame), lb)
    with gzip.open(dest.with_name(dest.stem + ".predictions.csv.gz"), "rt") as fh:
        assert fh.read().splitlines()[1].split(",")[6] == ""  # the skipped image keeps an empty score
    build(lb)
    t = json.loads((lb / "index.json").read_text())["protocols"][0]
    (row,) = t["unranked"]
    assert t["entries"] == [] and row["intervals"] == "bootstrap" and row["origin"]["reasons"] == reasons
    cell = row["metrics"]["upsample_nearest"]["auc"]
    assert cell["mean"] == result["metrics"]["upsample_nearest"]["auc"] and cell["lo"] < cell["mean"] < cell["hi"]
    page = (lb / "tiny.md").read_text()
    assert "3 images skipped" in page and not re.search(r"\bnan\b", page, re.IGNORECASE)


def test_two_grids_of_one_cell_are_stored_under_distinct_ids_and_collected_once(tmp_path, registered):
    """Grid cells are named s0, s1, ...: each is stored as <start stamp>-<cell name>, so grids never clash."""
    from bench.grid import GridDir, submit_cells

    stored = []
    for grid, (started, config) in enumerate((("2026-12-01T10:00:00+00:00", "c"), ("2026-12-07T21:15:03+00:00", "d"))):
        root = tmp_path / f"grid{grid}"  # the second grid ran after a detector version bump: another config
        run = run_dir(root, run_id="s0", timing={"started_at": started})
        result = json.loads((run / "results.json").read_text())
        result["detector"]["config_sha256"] = config * 64
        (run / "results.json").write_text(json.dumps(result))
        (root / "manifest.json").write_text(json.dumps({"schema": 1, "definition": {"partial": False},
                                                        "cells": [{"id": "tiny/clip_linear/s0"}]}))
        now, before = submit_cells(GridDir(root), tmp_path / "lb")
        assert before == [] and len(now) == 1
        stored.append(now[0])
        assert submit_cells(GridDir(root), tmp_path / "lb") == ([], now)  # collected twice: stored before
    assert [p.name for p in stored] == ["20261201-100000-s0.json", "20261207-211503-s0.json"]
    second = json.loads(stored[1].read_text())
    assert second["run_id"] == "20261207-211503-s0" and second["run_dir_name"] == "s0"
    frame = read_predictions(tmp_path / "lb")  # the predictions' run_id column follows, and they still load
    assert set(frame["run_id"]) == {"20261201-100000-s0", "20261207-211503-s0"}


def test_a_run_recorded_before_a_late_protocol_key_existed_is_the_same_protocol(tmp_path, registered):
    """A run's config.yaml written before `rounds` joined the schema still matches the registered protocol;
    a definition that really differs is refused."""
    import yaml

    frame = predictions(1.0, 0)
    run = write_run_dir(tmp_path / "runs", make_result("clip_linear", 0, frame=frame), frame)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert "rounds" in config["protocol"]
    old = {k: v for k, v in config["protocol"].items() if k != "rounds"}
    (run / "config.yaml").write_text(yaml.safe_dump({"protocol": old}))
    assert submit(run, tmp_path / "lb").is_file()

    edited = write_run_dir(tmp_path / "runs2", make_result("clip_linear", 1, frame=frame), frame)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["protocol"]["description"] = "another protocol under the same name"
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(LeaderboardError, match="records a protocol that differs"):
        submit(edited, tmp_path / "lb2")
