"""Bad input through the CLI, part 3: detectors that break the contract or diverge, a full disk, Ctrl-C.

Refusals go through the ``refused`` fixture (exit 2, one ``error:`` line, no traceback, nothing
written outside ``--out``).
"""

from __future__ import annotations

import os
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bad_input import run_args
from torch import nn

from bench import Detector
from bench.cli import main
from bench.plugin.registry import DETECTORS


def no_finished_runs(root) -> None:
    assert not list(Path(root).glob("**/results.json")), "a failed run left a results.json behind"


class _Base(Detector):
    @dataclass
    class Config:
        image_size: int = 32
        lr: float = 1e-2
        epochs: int = 1

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.fc = nn.Linear(3, 1)

    def forward(self, images):
        return self.fc(images.mean((2, 3))).squeeze(1)


class WideOutput(_Base):
    def forward(self, images):
        return self.fc(images.mean((2, 3)))  # [B, 1], not [B]


class FloatStep(_Base):
    def train_step(self, batch, ctx):
        super().train_step(batch, ctx)
        return 0.5


class CallsSelf(_Base):
    def train_step(self, batch, ctx):
        loss = self.loss(self(batch["image"]), batch)
        loss.backward()
        ctx.optimizer.step()
        ctx.optimizer.zero_grad()
        return {"loss": loss.detach()}


class NeverSteps(_Base):
    def train_step(self, batch, ctx):
        return {"loss": self.loss(ctx.model(batch["image"]), batch).detach()}


class NotDataclass(_Base):
    class Config:
        image_size = 32


class NanOnFakes(_Base):
    """Trains normally, then returns NaN at evaluation for the images it finds hard (the issue's case)."""

    def forward(self, images):
        logits = super().forward(images)
        if self.training:
            return logits
        return torch.where(images.mean((1, 2, 3)) > 0, torch.full_like(logits, float("nan")), logits)


class NanLoss(_Base):
    def forward(self, images):
        return super().forward(images) * float("nan")


class BigHead(_Base):
    """A 4 MB trainable vector beside a tiny head: its training state and checkpoint are megabytes."""

    @dataclass
    class Config:
        image_size: int = 32
        lr: float = 1e-2
        epochs: int = 1
        optimizer: str = "adamw"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.big = nn.Parameter(torch.zeros(1_000_000))

    def forward(self, images):
        return super().forward(images) + 0 * self.big[0]

    def configure_optimizer(self, total_steps):
        kind = torch.optim.AdamW if self.cfg.optimizer == "adamw" else torch.optim.SGD
        return kind(self.parameters(), lr=self.cfg.lr), None


@pytest.fixture
def plugin():
    added = []

    def register(name, cls):
        DETECTORS.add(name, cls)
        added.append(name)
        return name

    yield register
    for name in added:
        DETECTORS.remove(name)


# -- adapters that break the contract or produce unusable numbers ---------------------------------------
@pytest.mark.parametrize("cls, match", [
    (WideOutput, r"breaks the adapter contract: forward returned shape \(2, 1\), expected \(2,\)"),
    (FloatStep, r"train_step returned float; return a dict"),
    (CallsSelf, r"train_step never called ctx.model"),
    (NeverSteps, r"left every trainable parameter unchanged"),
    (NotDataclass, r"Config of detector .* is not a dataclass"),
])
def test_adapters_that_break_the_contract_are_refused_in_one_sentence(refused, plugin, tiny_protocol, tmp_path,
                                                                        cls, match):
    name = plugin(f"bad_{cls.__name__.lower()}", cls)
    refused(["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs")], match)
    no_finished_runs(tmp_path)
    assert not list((tmp_path / "runs").glob("*/*/*")), "a run refused before training left its directory"


def test_non_finite_scores_stop_the_run_naming_detector_set_and_ids(refused, plugin, tiny_protocol, tmp_path):
    name = plugin("nan_on_fakes", NanOnFakes)
    refused(["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs"),
             "--batch-size", "8"], r"Detector 'nan_on_fakes' returned non-finite .* for \d+ of \d+ images \(first: .*\)")
    no_finished_runs(tmp_path)


def test_a_non_finite_loss_stops_training_at_its_step(refused, plugin, tiny_protocol, tmp_path):
    name = plugin("nan_loss", NanLoss)
    refused(["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs"),
             "--batch-size", "8"], r"'nan_loss' produced a non-finite loss \(nan\) at step 1")


@pytest.mark.parametrize("lr, steps", [("1e30", []), ("1e30", ["--max-steps", "1"]), ("1e36", ["--max-steps", "1"])])
def test_diverged_training_stops_even_after_one_step(refused, tiny_protocol, tmp_path, lr, steps):
    refused([*run_args(tiny_protocol, None, tmp_path / "runs", "sam"), "-o", f"lr={lr}", "--batch-size", "8", *steps],
            r"Training of detector 'sam' diverged at step 1 \(the trainable parameters' norm went from .* to .*\); "
            r"lower the learning rate")
    no_finished_runs(tmp_path)


def test_a_learning_rate_beyond_the_arithmetic_is_named(refused, tiny_protocol, tmp_path):
    refused([*run_args(tiny_protocol, None, tmp_path / "runs", "sam"), "-o", "lr=1e38", "--max-steps", "1"],
            r"Detector 'sam' failed its contract check with RuntimeError \(.*overflow.*\) because lr=1e\+38 is too "
            r"large for the arithmetic")


def test_interrupt_leaves_an_incomplete_run_and_one_line(capsys, tiny_protocol, tmp_path, monkeypatch):
    from bench.run import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.Runner, "predict", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(run_args(tiny_protocol, None, tmp_path / "runs"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == 130 and err.startswith("interrupted:") and "Traceback" not in err
    (run_dir,) = list((tmp_path / "runs").glob("*/*/*"))
    assert (run_dir / "INCOMPLETE").exists() and not (run_dir / "results.json").exists()
    from bench.errors import BenchError
    from bench.run.results import read_results

    with pytest.raises(BenchError, match="unfinished run"):
        read_results(run_dir)  # never mistaken for a finished run by readers (eval-only, diagnose, sweep)


# -- a disk that refuses the run's files ---------------------------------------------------------------
@pytest.fixture
def file_size_limit():
    """Set RLIMIT_FSIZE (per-file size; Python ignores SIGXFSZ, so writes fail with EFBIG) for one block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def limit(nbytes: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_file_the_disk_refuses_is_one_sentence_and_the_run_stays_incomplete(refused, plugin, file_size_limit,
                                                                              tiny_protocol, tmp_path):
    name = plugin("big_head", BigHead)
    base = ["run", "--protocol", str(tiny_protocol), "--detector", name, "--batch-size", "8"]
    out = tmp_path / "runs"
    file_size_limit(2_000_000)  # the 16 MB training state (weights, AdamW moments, best epoch) does not fit
    refused([*base, "--out", str(out)], r"Writing .*/state/training\.pt failed: File too large \(about "
            r"1\d,\d{3},\d{3} bytes needed, [\d,]+ bytes free there\); free space there .* continue with `bench run "
            r"--resume .*`")
    (run_dir,) = list(out.glob("*/*/*"))
    assert (run_dir / "INCOMPLETE").exists() and not (run_dir / "results.json").exists()
    assert not list(run_dir.glob("**/.*.tmp")), "a half-written temporary file was left behind"
    file_size_limit(resource.RLIM_INFINITY)
    main(["run", "--protocol", str(tiny_protocol), "--detector", name, "-o", "optimizer=sgd", "--batch-size", "8",
          "--out", str(tmp_path / "trained"), "--run-name", "done"])
    trained = tmp_path / "trained" / "tiny" / name / "done"
    file_size_limit(2_000_000)  # eval-only saves no state: the 4 MB checkpoint is the first big file
    refused([*base, "-o", "optimizer=sgd", "--eval-only", "--checkpoint", str(trained), "--out", str(tmp_path / "eval")],
            r"Writing .*/checkpoint/model\.safetensors failed: .*File too large.* \(about 4,000,\d{3} bytes needed")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_then_room_again_resumes_to_a_finished_run(refused, plugin, tiny_protocol, tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                             check=False)
    if mounted.returncode:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        name = plugin("big_head", BigHead)
        refused(["run", "--protocol", str(tiny_protocol), "--detector", name, "--batch-size", "8", "--out", str(mount)],
                r"Writing .*/state/training\.pt failed: No space left on device \(about 1\d,\d{3},\d{3} bytes needed")
        (run_dir,) = list(mount.glob("*/*/*"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        main(["run", "--resume", str(run_dir)])
        assert (run_dir / "results.json").is_file() and not (run_dir / "INCOMPLETE").exists()
        assert name in capsys.readouterr().out
    finally:
        subprocess.run(["umount", str(mount)], check=False)
