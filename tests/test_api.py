"""The pipeline end to end on a tiny synthetic protocol, and its bad-input behaviour."""

import json

import numpy as np
import pandas as pd
import pytest

from bench.api import run
from bench.errors import BenchError, DataError, ImageError
from bench.run.runner import RunnerOptions


def test_clip_linear_run_writes_a_complete_run_directory(tiny_protocol, tmp_path):
    result = run(tiny_protocol, "clip_linear", seed=0, out_dir=tmp_path / "runs", opts=RunnerOptions(batch_size=16))
    run_dir = tmp_path / "runs" / "tiny" / "clip_linear" / result["run_id"]
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["status"] == "complete" and saved["partial"] is False
    assert set(saved["metrics"]) == {"upsample_nearest", "blend_ellipse", "peaks_p4"}
    for metrics in saved["metrics"].values():
        assert 0.0 <= metrics["auc"] <= 1.0 and metrics["n_real"] == metrics["n_fake"] == 8
    assert set(saved["groups"]) == {"in_domain", "unseen"}
    assert saved["detector"]["config"]["backbone"].startswith("timm:tf_efficientnet_lite0")
    assert saved["detector"]["params_trainable"] == 1281
    assert saved["selection"]["c"] in saved["detector"]["config"]["c_values"]
    assert saved["data"]["train"]["fingerprint"].startswith("sha256:")
    preds = pd.read_csv(run_dir / "predictions" / "peaks_p4.csv.gz")
    assert list(preds.columns) == ["index", "source", "id", "subset", "group", "label", "score", "test_set", "seed",
                                   "run_id"]
    assert set(preds["test_set"]) == {"peaks_p4"} and set(preds["run_id"]) == {result["run_id"]}
    assert len(preds) == 16 and preds["score"].notna().all()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train_log.jsonl").is_file()


def test_gradient_detector_selects_on_validation(tiny_protocol, tmp_path):
    result = run(tiny_protocol, "univfd", out_dir=tmp_path, opts=RunnerOptions(batch_size=8), limit=6)
    selection = result["selection"]
    assert selection["rule"] == "best:acc"
    assert len(selection["history"]) == 2  # the protocol's budget caps univfd's 5 epochs at 2
    best = max(h["val"]["acc"] for h in selection["history"])
    assert selection["val"]["acc"] == best
    assert result["partial"] is True and result["partial_reasons"] == ["--limit 6"]


def test_named_run_directory_is_never_overwritten(tiny_protocol, tmp_path):
    opts = RunnerOptions(batch_size=16)
    run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=opts, run_name="a", limit=4)
    with pytest.raises(BenchError, match="already exists"):
        run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=opts, run_name="a", limit=4)


def _folder_protocol(tmp_path, real_test=True):
    from images import write_image

    root = tmp_path / "data"
    for s, split in enumerate(("train", "val", "test")):
        for c, (label, n) in enumerate((("0_real", 4), ("1_fake", 4))):
            if split == "test" and label == "0_real" and not real_test:
                continue
            for i in range(n):  # every image its own pixels: a test image equal to a train one is not held out
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40), seed=(2 * s + c) * 10 + i)
    proto = tmp_path / "folderp.yaml"
    proto.write_text("""name: folderp
version: 1
description: folder test.
sources: {ds: {type: folder, root: ds, layout: "{split}/{label}"}}
detector_defaults: {backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}
train: {source: ds, split: train}
val: {source: ds, split: val}
test: {t: {source: ds, split: test}}
metrics: [auc, ap]
primary: auc@t
""")
    return proto, root


def test_one_class_test_set_fails_before_training(tmp_path):
    proto, root = _folder_protocol(tmp_path, real_test=False)
    with pytest.raises(DataError, match="test/t has 0 real and 4 fake images"):
        run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_bad_images_stop_the_run_unless_skipped(tmp_path):
    proto, root = _folder_protocol(tmp_path)
    (root / "ds" / "test" / "1_fake" / "0.png").write_bytes(b"")
    (root / "ds" / "train" / "0_real" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(ImageError, match="2 image file.*zero-byte.*--skip-bad-images"):
        run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "runs")
    result = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / "runs",
                 opts=RunnerOptions(batch_size=4, skip_bad_images=True))
    assert result["skipped_images"]["count"] == 2
    assert result["metrics"]["t"]["n_fake"] == 3
    preds = pd.read_csv(tmp_path / "runs" / "folderp" / "clip_linear" / result["run_id"] / "predictions" / "t.csv.gz")
    assert preds["score"].isna().sum() == 1


def test_missing_data_root_is_a_clear_error(tmp_path):
    proto, _ = _folder_protocol(tmp_path)
    with pytest.raises(DataError, match="does not exist|no data root"):
        run(proto, "clip_linear", data_root=tmp_path / "nowhere", out_dir=tmp_path / "runs")


def test_clip_linear_computes_each_image_once(tiny_protocol, tmp_path, monkeypatch):
    from detectors.blocks.backbones import Backbone

    seen = []
    original = Backbone.forward

    def counting(self, x):
        seen.append(x.shape[0])
        return original(self, x)

    monkeypatch.setattr(Backbone, "forward", counting)
    result = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=RunnerOptions(batch_size=16),
                 overrides={"c_values": [0.01, 0.1, 1.0, 10.0]})
    assert len(result["selection"]["grid"]) == 4
    # train + val + tests, once each (the validation threshold reads the cached val features); the run-time
    # contract check's copy sees CONTRACT_BATCH random images in forward() and again in features(), and the
    # FLOP count's copy one blank image.
    from bench.run.checks import CONTRACT_BATCH

    assert sum(seen) == sum(d["n"] for d in result["data"].values()) + 2 * CONTRACT_BATCH + 1


def test_a_run_records_its_validation_threshold_deployment_metrics_distinct_counts_and_cost(tiny_protocol, tmp_path):
    import gzip

    import pandas as pd

    from bench.leaderboard import read_runs
    from bench.leaderboard.collect import load_run_dir
    from bench.leaderboard.consistency import read_predictions_file
    from bench.metrics import DEPLOYMENT_METRICS, youden_threshold
    from bench.run.results import SCHEMA_VERSION, VAL_PREDICTIONS

    result = run(tiny_protocol, "sam", out_dir=tmp_path / "runs", opts=RunnerOptions(batch_size=16), run_name="r")
    run_dir = tmp_path / "runs" / "tiny" / "sam" / "r"
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION == 3
    with gzip.open(run_dir / VAL_PREDICTIONS, "rt") as fh:
        val = pd.read_csv(fh)
    assert len(val) == saved["data"]["val"]["n"] and set(val["run_id"]) == {"r"}
    chosen = youden_threshold(val["label"], val["score"])
    assert saved["threshold"] == {"rule": "max_balanced_accuracy_on_val", "split": "val", **chosen}
    for test, values in saved["metrics"].items():
        assert set(DEPLOYMENT_METRICS) <= set(values), test
        with gzip.open(run_dir / "predictions" / f"{test}.csv.gz", "rt") as fh:
            part = pd.read_csv(fh)
        assert values["acc_val_thr"] == pytest.approx(np.mean((part["score"] > chosen["value"]) == part["label"]))
    unseen = saved["groups"]["unseen"]
    assert (unseen["n_real"], unseen["n_fake"]) == (8, 16)  # the two test sets share their 8 real crops
    cost = saved["cost"]
    assert cost["gflops_per_image"] > 0 and cost["input"] == [1, 3, 32, 32] and "FlopCounterMode" in cost["method"]
    assert cost["params_trainable"] == saved["detector"]["params_trainable"] and cost["device"].startswith("cpu (")
    assert cost["predict_images"] == 48 and cost["predict_images_per_second"] > 0
    assert result["threshold"] == saved["threshold"]
    stored = load_run_dir(run_dir)  # the leaderboard recomputes every stored metric, the new ones too
    read_predictions_file(stored.predictions, stored.result)
    exported = read_runs(run_dir)
    assert {"acc_val_thr", "ece", "tpr_at_fpr1"} <= set(exported["metric"])
    assert exported.query("target == 'cost' and metric == 'gflops_per_image'")["value"].item() == cost["gflops_per_image"]
    assert exported.query("target == 'val' and metric == 'threshold'")["value"].item() == chosen["value"]
