"""Results as data: read_runs / read_predictions / export, on a leaderboard and on a runs/ tree."""

from __future__ import annotations

import pandas as pd
import pytest
from board import TINY, board, commit, make_result, predictions, write_run_dir

from bench.cli import main
from bench.leaderboard import LeaderboardError, export, read_predictions, read_runs
from bench.leaderboard.data import COLUMNS


def test_read_runs_is_one_row_per_run_target_and_metric(tmp_path):
    lb = board(tmp_path / "lb", {"a": 1.0, "b": 0.5}, seeds=(0, 1))
    frame = read_runs(lb)
    assert list(frame.columns) == COLUMNS
    targets = len(TINY.test) + len(TINY.groups)
    metrics = frame.query("target_kind != 'run'")
    assert len(metrics) == 4 * targets * 6  # runs x targets x (auc, ap, eer, acc, real_acc, fake_acc)
    one = frame.query("detector == 'a' and seed == 1 and target == 'unseen' and metric == 'auc'")
    assert one["value"].item() == make_result("a", 1, frame=predictions(1.0, 1, noise_seed=1))["groups"]["unseen"]["auc"]
    assert set(frame["target_kind"]) == {"test", "group", "run"} and frame["rankable"].all()
    assert metrics.query("target_kind == 'test'")["n_real"].eq(40).all()
    # without a protocol definition only equal ids are the same image: the group's 2 x 40 reals count as 80
    assert metrics.query("target == 'unseen'")[["n_real", "n_fake"]].drop_duplicates().values.tolist() == [[80, 80]]
    cost = frame.query("target == 'cost'").set_index(["run_id", "metric"])["value"]
    assert set(cost.index.get_level_values("metric")) == {"params_trainable", "params_total"}  # all schema 1 records
    assert frame["device"].eq("cpu (unknown)").all()


def test_group_counts_are_distinct_images_when_the_protocol_says_which_are_shared(tmp_path):
    lb = tmp_path / "lb"
    frame = predictions(1.0, 0)
    result = make_result("a", 0, frame=frame)
    result["protocol"]["definition"] = TINY.model_dump(mode="json")  # a synthetic source: reals shared by index
    commit(lb, result, frame)
    unseen = read_runs(lb).query("target == 'unseen'")
    assert unseen[["n_real", "n_fake"]].drop_duplicates().values.tolist() == [[40, 80]]  # not 80 reals


def test_read_predictions_filters_and_names_the_run(tmp_path):
    lb = board(tmp_path / "lb", {"a": 1.0, "b": 0.5}, seeds=(0, 1))
    frame = read_predictions(lb, detector="b", test_set="peaks_p4")
    assert list(frame.columns[:5]) == ["protocol", "detector", "seed", "run_id", "test_set"]
    assert len(frame) == 2 * 80 and set(frame["detector"]) == {"b"} and set(frame["seed"]) == {0, 1}
    assert read_predictions(lb, protocol="other").empty


def test_a_runs_tree_and_partial_runs_are_readable(tmp_path):
    frame = predictions(1.0, 0)
    write_run_dir(tmp_path / "runs", make_result("a", 0, frame=frame), frame)
    write_run_dir(tmp_path / "runs", make_result("b", 1, frame=frame, partial=True, partial_reasons=["--limit 4"]),
                  frame)
    runs = read_runs(tmp_path / "runs")
    assert sorted(set(zip(runs["detector"], runs["partial"]))) == [("a", False), ("b", True)]
    assert len(read_predictions(tmp_path / "runs")) == 2 * 3 * 80
    with pytest.raises(LeaderboardError, match="holds no results"):
        read_runs(tmp_path / "empty")


@pytest.mark.parametrize("name", ["all.csv", "all.csv.gz", "all.parquet"])
def test_export_round_trips(tmp_path, name, capsys):
    lb = board(tmp_path / "lb", {"a": 1.0}, seeds=(0,))
    main(["leaderboard", "export", "--leaderboard-dir", str(lb), "--out", str(tmp_path / name)])
    assert "wrote" in capsys.readouterr().out
    text = {"detector_version": str, "distribution": str}  # "1" is a version string, not a number
    back = pd.read_parquet(tmp_path / name) if name.endswith("parquet") else pd.read_csv(tmp_path / name, dtype=text)
    pd.testing.assert_frame_equal(back, read_runs(lb), check_dtype=False)
    with pytest.raises(LeaderboardError, match="unknown format"):
        export(lb, tmp_path / "all.xlsx")
