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
