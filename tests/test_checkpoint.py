"""Evaluating saved runs and released weights (--eval-only --checkpoint), strictly."""

import pytest
import torch

from bench.api import run
from bench.errors import ConfigError
from bench.run.runner import RunnerOptions

OPTS = RunnerOptions(batch_size=16)


def test_eval_only_reproduces_the_trained_run(tiny_protocol, tmp_path):
    trained = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=OPTS, run_name="trained")
    evaluated = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=OPTS, run_name="eval", eval_only=True,
                    checkpoint=trained["run_dir"])
    assert evaluated["selection"]["rule"] == "eval_only"
    for test, metrics in trained["metrics"].items():
        assert evaluated["metrics"][test]["auc"] == pytest.approx(metrics["auc"], abs=1e-9)


def test_univfd_released_head_format_loads(tiny_protocol, tmp_path):
    head = {"weight": torch.randn(1, 1280) * 0.05, "bias": torch.tensor([0.3])}
    torch.save(head, tmp_path / "fc_weights.pth")
    result = run(tiny_protocol, "univfd", out_dir=tmp_path, opts=OPTS, eval_only=True,
                 checkpoint=tmp_path / "fc_weights.pth")
    from bench.plugin.factory import resolve_detector

    det = resolve_detector("univfd", {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}).build()
    det.load_checkpoint(head, "fc", {})
    assert torch.equal(det.head.weight, head["weight"]) and result["metrics"]["peaks_p4"]["n_real"] == 8


def test_head_of_the_wrong_size_fails_loudly(tiny_protocol, tmp_path):
    torch.save({"weight": torch.randn(1, 768), "bias": torch.zeros(1)}, tmp_path / "fc.pth")
    with pytest.raises(ConfigError, match=r"weight shape \(1, 768\).*needs \(1, 1280\)"):
        run(tiny_protocol, "univfd", out_dir=tmp_path, eval_only=True, checkpoint=tmp_path / "fc.pth")


def test_checkpoint_of_another_config_or_detector_fails(tiny_protocol, tmp_path):
    trained = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=OPTS, run_name="t", limit=4)
    with pytest.raises(ConfigError, match="trained as detector 'clip_linear' with config"):
        run(tiny_protocol, "clip_linear", out_dir=tmp_path, eval_only=True, checkpoint=trained["run_dir"],
            overrides={"c_values": [1.0]})
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="does not fit detector.*missing keys.*unexpected keys"):
        run(tiny_protocol, "clip_linear", out_dir=tmp_path, eval_only=True, checkpoint=tmp_path / "other.pth")


def test_eval_only_needs_a_checkpoint(tiny_protocol, tmp_path):
    with pytest.raises(ConfigError, match="--eval-only needs --checkpoint"):
        run(tiny_protocol, "clip_linear", out_dir=tmp_path, eval_only=True)


def test_corrupt_checkpoint_file_is_a_clear_error(tiny_protocol, tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigError, match="cannot be read as a PyTorch state dict"):
        run(tiny_protocol, "clip_linear", out_dir=tmp_path, eval_only=True, checkpoint=tmp_path / "broken.pth")


def test_oracle_accuracy_selection_works_for_the_logistic_probe(tiny_protocol, tmp_path):
    result = run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=OPTS, limit=6,
                 overrides={"select": "best:oracle_acc"})
    assert "oracle_acc" in result["selection"]["val"]
