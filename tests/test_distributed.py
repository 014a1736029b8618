"""A 2-process run (accelerate's multi-CPU recipe) gives the same scores as a 1-process run."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import write_tiny_protocol

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _bench_run(tmp_path, detector, name, launcher):
    # 24 training images and a global batch of 10 leave a short last batch, which must not make the
    # result depend on the process count.
    cmd = [*launcher, "-m", "bench", "run", "--protocol", str(tmp_path / "tiny.yaml"), "--detector", detector,
           "--out", str(tmp_path / "runs"), "--run-name", name, "--batch-size", "10"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny" / detector / name
    return json.loads((run_dir / "results.json").read_text()), run_dir


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["univfd", "clip_linear"])
def test_two_processes_match_one(tmp_path, detector):
    write_tiny_protocol(tmp_path)
    one, one_dir = _bench_run(tmp_path, detector, "one", [sys.executable])
    two, two_dir = _bench_run(tmp_path, detector, "two", LAUNCH)
    assert (one["env"]["num_processes"], two["env"]["num_processes"]) == (1, 2)
    assert one["selection"].get("steps_total") == two["selection"].get("steps_total")
    for test in one["metrics"]:
        for key in ("auc", "ap", "acc", "n_real", "n_fake"):
            assert two["metrics"][test][key] == pytest.approx(one["metrics"][test][key], abs=1e-6), (test, key)
        a = pd.read_csv(one_dir / "predictions" / f"{test}.csv.gz")
        b = pd.read_csv(two_dir / "predictions" / f"{test}.csv.gz")
        assert list(a["id"]) == list(b["id"])
        assert (a["score"] - b["score"]).abs().max() < 1e-4


@pytest.mark.slow
def test_the_feature_cache_is_written_and_read_correctly_by_two_processes(tmp_path):
    write_tiny_protocol(tmp_path)
    cold, cold_dir = _bench_run(tmp_path, "clip_linear", "cold-two", LAUNCH)  # 2 processes write the cache
    warm, warm_dir = _bench_run(tmp_path, "clip_linear", "warm-one", [sys.executable])
    again, _ = _bench_run(tmp_path, "clip_linear", "warm-two", LAUNCH)  # and 2 processes read it
    n = sum(d["n"] for d in cold["data"].values())
    assert (cold["runner"]["feature_cache"]["misses"], cold["runner"]["feature_cache"]["hits"]) == (n, 0)
    assert warm["runner"]["feature_cache"]["hits"] == again["runner"]["feature_cache"]["hits"] == n
    assert warm["metrics"] == cold["metrics"] and again["metrics"] == cold["metrics"]
    for test in cold["metrics"]:
        a = pd.read_csv(cold_dir / "predictions" / f"{test}.csv.gz")
        b = pd.read_csv(warm_dir / "predictions" / f"{test}.csv.gz")
        assert (a["score"] - b["score"]).abs().max() < 1e-4


@pytest.mark.slow
def test_a_file_failing_late_in_one_process_stops_every_process_in_one_sentence(tmp_path):
    from images import write_bad, write_image

    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(5):
                write_image(root / split / label / f"{i}.png", size=(40, 40), seed=i + 5 * len(split + label))
    write_bad(root / "test" / "1_fake" / "4.png", "truncated_png")  # passes the header check, fails to decode
    proto = tmp_path / "late.yaml"
    proto.write_text("""name: late
version: 1
description: a file that fails only when decoded.
sources: {d: {type: folder, root: ".", layout: "{split}/{label}"}}
detector_defaults: {backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}
train: {source: d, split: train}
val: {source: d, split: val}
test: {t: {source: d, split: test}}
metrics: [auc]
primary: auc@t
""")
    cmd = [*LAUNCH, "-m", "bench", "run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root",
           str(root), "--out", str(tmp_path / "runs"), "--batch-size", "4", "--no-cache"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    # Both processes stop with the same sentence (the launcher may end the second before it prints).
    assert errors and all("1_fake/4.png" in e and "--skip-bad-images" in e for e in errors), done.stderr[-2000:]
    assert "collective" not in done.stderr and "Connection closed" not in done.stderr
