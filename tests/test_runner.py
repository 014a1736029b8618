"""Runner hooks: warm-up passes are not steps and leave the training data order unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bench import Detector
from bench.data.splits import build_sources, resolve_all
from bench.protocol import load_protocol
from bench.run.runner import Runner, RunnerOptions


class Recorder(Detector):
    """A linear model on 8×8 pooled pixels that records which rows each pass saw."""

    @dataclass
    class Config:
        image_size: int = 32
        lr: float = 1e-2
        epochs: int = 2
        warmup: int = 0

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.fc = nn.Linear(3 * 8 * 8, 1)
        self.seen: list[list[int]] = []
        self.warm_seen: list[list[int]] = []
        self.scheduler_steps = 0

    @property
    def warmup_batches(self) -> int:
        return self.cfg.warmup

    def forward(self, images):
        return self.fc(nn.functional.adaptive_avg_pool2d(images, 8).flatten(1)).squeeze(1)

    def configure_optimizer(self, total_steps):
        optimizer = torch.optim.SGD(self.fc.parameters(), lr=self.cfg.lr)

        def count(step):
            self.scheduler_steps += 1
            return 1.0

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, count)

    def warmup_step(self, batch, ctx):
        self.warm_seen.append(batch["index"].tolist())
        return super().warmup_step(batch, ctx)

    def train_step(self, batch, ctx):
        self.seen.append(batch["index"].tolist())
        return super().train_step(batch, ctx)


def _fit(tiny_protocol, warmup: int, max_steps: int | None = None):
    proto = load_protocol(tiny_protocol)
    splits = resolve_all(proto, build_sources(proto, None))
    det = Recorder(Recorder.Config(warmup=warmup))
    runner = Runner(RunnerOptions(batch_size=4, max_steps=max_steps), seed=0)
    selection = runner.fit(det, splits["train"], splits["val"], "last", proto.budget.max_epochs, None)
    return det, selection, runner


def test_warm_up_passes_are_not_steps_and_keep_the_data_order(tiny_protocol):
    plain, plain_sel, _ = _fit(tiny_protocol, warmup=0)
    warm, warm_sel, runner = _fit(tiny_protocol, warmup=3)
    assert len(warm.warm_seen) == 3 and plain.warm_seen == []
    assert warm.seen == plain.seen  # same rows in the same order, step for step
    assert warm_sel["steps_total"] == plain_sel["steps_total"] == len(plain.seen)
    # LambdaLR calls its function once at construction, then once per scheduler.step().
    assert warm.scheduler_steps == plain.scheduler_steps == len(plain.seen) + 1
    assert [e["batch"] for e in runner.log if e.get("event") == "warmup"] == [1, 2, 3]


def test_a_step_budget_counts_optimisation_steps_only(tiny_protocol):
    plain, _, _ = _fit(tiny_protocol, warmup=0, max_steps=3)
    warm, _, _ = _fit(tiny_protocol, warmup=2, max_steps=3)
    assert len(plain.seen) == len(warm.seen) == 3 and plain.seen == warm.seen


def test_the_gpu_decode_flow_gives_the_cpu_scores(tmp_path, monkeypatch):
    """--decode gpu end to end (torchvision's decoder stands in for nvjpeg on the CPU)."""
    from conftest import write_folder_protocol
    from images import write_image

    from bench.api import run
    from bench.errors import ConfigError

    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(4):
                write_image(root / "ds" / split / label / f"{i}.jpg", size=(48, 40), seed=i + 10 * len(split + label))
    proto = write_folder_protocol(tmp_path / "jpegs.yaml", "JPEG files for the decode paths.")
    with pytest.raises(ConfigError, match="--decode gpu needs a CUDA device"):
        Runner(RunnerOptions(decode="gpu"), seed=0)
    monkeypatch.setenv("BENCH_TEST_CPU_DECODE", "1")
    scores = {}
    for decode in ("cpu", "gpu"):
        result = run(proto, "clip_linear", data_root=root, out_dir=tmp_path / decode,
                     opts=RunnerOptions(batch_size=4, decode=decode, cache=False))
        scores[decode] = result["metrics"]["t"]["auc"]
    assert scores["gpu"] == pytest.approx(scores["cpu"], abs=1e-6)


class Dropping(Recorder):
    """Dropout in training: its random stream must not depend on the number of loader workers."""

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.drop = nn.Dropout(0.5)

    def forward(self, images):
        return self.fc(self.drop(nn.functional.adaptive_avg_pool2d(images, 8).flatten(1))).squeeze(1)


def test_training_randomness_does_not_depend_on_the_worker_count(tiny_protocol):
    proto = load_protocol(tiny_protocol)
    splits = resolve_all(proto, build_sources(proto, None))
    weights = []
    for workers in (0, 1):
        torch.manual_seed(0)
        det = Dropping(Dropping.Config())
        runner = Runner(RunnerOptions(batch_size=4, workers=workers), seed=0)
        runner.fit(det, splits["train"], splits["val"], "last", 2, None)
        weights.append(det.fc.weight.detach().clone())
    assert torch.equal(*weights)


def test_run_leaves_the_callers_options_alone(tiny_protocol, tmp_path):
    from bench.api import run

    opts = RunnerOptions(batch_size=16, skip={"val": {0}})
    before = (dict(opts.skip), opts.precision)
    run(tiny_protocol, "clip_linear", out_dir=tmp_path, opts=opts, limit=4)
    assert (opts.skip, opts.precision) == before


def test_gpu_decode_is_refused_for_detectors_that_take_pil_images(tiny_protocol, tmp_path, monkeypatch):
    from bench.api import run
    from bench.errors import ConfigError
    from bench.plugin.registry import DETECTORS

    monkeypatch.setenv("BENCH_TEST_CPU_DECODE", "1")
    DETECTORS.add("recorder", Recorder)
    try:
        with pytest.raises(ConfigError, match="takes PIL images"):
            run(tiny_protocol, "recorder", out_dir=tmp_path, opts=RunnerOptions(decode="gpu"))
    finally:
        DETECTORS.remove("recorder")
