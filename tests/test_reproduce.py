"""`bench reproduce` re-runs a stored result and compares every number within a tolerance."""

from __future__ import annotations

import json

import pytest

from bench.api import run
from bench.cli import main
from bench.run.runner import RunnerOptions

TINY = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


def test_reproduce_agrees_on_the_same_machine_and_flags_a_changed_number(tiny_protocol, tmp_path, capsys):
    stored = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "a", opts=RunnerOptions(batch_size=16))
    main(["reproduce", stored["run_dir"], "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert "agree within 0.01" in out and "NO" not in out
    assert "same CPU model" in out

    result = json.loads((tmp_path / "a" / "tiny" / "clip_linear" / stored["run_id"] / "results.json").read_text())
    result["metrics"]["peaks_p4"]["auc"] += 0.2
    tampered = tmp_path / "a" / "tiny" / "clip_linear" / stored["run_id"] / "results.json"
    tampered.write_text(json.dumps(result))
    with pytest.raises(SystemExit) as stopped:
        main(["reproduce", str(tampered), "--out", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert stopped.value.code == 1 and "differ by more than 0.01" in out and "peaks_p4 auc -0.20000" in out


def test_a_detector_config_this_code_cannot_rebuild_is_refused_before_training(tiny_protocol, tmp_path, monkeypatch):
    import bench.api
    from bench.analysis.reproduce import reproduce
    from bench.errors import BenchError

    stored = run(tiny_protocol, "clip_linear", overrides=TINY, out_dir=tmp_path / "a", opts=RunnerOptions(batch_size=16))
    path = tmp_path / "a" / "tiny" / "clip_linear" / stored["run_id"] / "results.json"
    result = json.loads(path.read_text())
    result["detector"]["config_sha256"] = "0" * 64  # as after a detector version bump
    path.write_text(json.dumps(result))

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the detector config")

    monkeypatch.setattr(bench.api, "run", no_training)
    with pytest.raises(BenchError, match=r"cannot be rebuilt by this code \(hash 000000000000 vs \w{12}\); the "
                                         "detector's version or defaults changed"):
        reproduce(path, tmp_path / "b")
    result["detector"]["config"]["no_such_setting"] = 1
    path.write_text(json.dumps(result))
    with pytest.raises(BenchError, match=r"cannot be rebuilt by this code \(.*no_such_setting"):
        reproduce(path, tmp_path / "b")
    assert not (tmp_path / "b").exists()
