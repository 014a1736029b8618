"""``bench leaderboard submit``: results and predictions stored together, only for registered protocols."""

from __future__ import annotations

import gzip
import importlib
import json
import sys

import pandas as pd
import pytest
from board import TINY, make_result, predictions, write_run_dir
from conftest import TINY_PROTOCOL

from bench.leaderboard import LeaderboardError, build, read_predictions, submit
from bench.registry import PROTOCOLS


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
    ({"schema_version": 3}, "schema_version 3"),
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
