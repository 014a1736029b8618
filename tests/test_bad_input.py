"""Bad input through the CLI: each kind ends in one clear sentence (no traceback) or a recorded conversion.

Every case runs ``bench`` in-process (``bench.cli.main``) and checks the exit status, that stderr is
a single ``error: ...`` line naming the problem, and that nothing that looks like a finished run
was left behind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
import torch
from images import write_bad, write_image
from torch import nn

from bench import Detector
from bench.cli import main
from bench.plugin.registry import DETECTORS

TINY = ["-o", "backbone=timm:tf_efficientnet_lite0@imagenet-offline", "-o", "image_size=32"]


def fails(capsys, argv: list[str], match: str) -> str:
    """Run ``bench argv``; assert exit 2 with one ``error:`` line matching ``match``; return it."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def no_finished_runs(root) -> None:
    assert not list(root.glob("**/results.json")), "a failed run left a results.json behind"


# -- settings and options ------------------------------------------------------------------------
@pytest.mark.parametrize("extra, match", [
    (["-o", "epochs=0"], r"'epochs'.*is 0; use a whole number >= 1"),
    (["-o", "image_size=0"], r"'image_size'.*positive number of pixels"),
    (["-o", "c_values=[]"], r"'c_values'.*empty list"),
    (["-o", "lr=.nan"], r"'lr'.*finite number"),
    (["-o", "lr=-1"], r"'lr'.*positive finite number"),
    (["-o", "c_value=[1.0]"], r"Unknown setting 'c_value'.*Did you mean 'c_values'"),
    (["-o", "lr"], r"not key=value"),
    (["-o", "probe=ridge"], r"probe must be 'logistic' or 'sgd'"),
    (["--batch-size", "0"], r"--batch-size must be a positive integer"),
    (["--threads", "0"], r"--threads must be a positive integer"),
    (["--workers", "many"], r"--workers 'many' must be 'auto' or a whole number"),
    (["--seeds", ","], r"--seeds ',' must be comma-separated integers"),
    (["--perturb", "jpeg=500"], r"--perturb 'jpeg=500' is invalid"),
    (["--eval-only"], r"--eval-only needs --checkpoint"),
    (["--precision", "fp16", "--cpu"], r"fp16 does not run on the CPU"),
])
def test_bad_settings_fail_before_any_work(capsys, tiny_protocol, tmp_path, extra, match):
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", "clip_linear", "--out",
                   str(tmp_path / "runs"), *TINY, *extra], match)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_unknown_names_suggest_the_close_ones(capsys, tiny_protocol, tmp_path):
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", "clip_linaer", "--out", str(tmp_path)],
          r"Did you mean 'clip_linear'")
    fails(capsys, ["run", "--protocol", "synthetic_universl", "--detector", "sam", "--out", str(tmp_path)],
          r"synthetic_universal")


def test_precision_conflicting_with_the_launcher_is_refused(capsys, tiny_protocol, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", "clip_linear", "--precision", "no",
                   "--out", str(tmp_path), *TINY], r"conflicts with the launcher's --mixed_precision bf16")


def test_unwritable_out_fails_before_the_run(capsys, tiny_protocol, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", "clip_linear", "--out",
                   str(blocker / "runs"), *TINY], r"cannot be written under --out .*not a directory")


def test_malformed_and_unknown_protocol_keys(capsys, tmp_path):
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("name: broken\nversion: [1\n")
    fails(capsys, ["validate", str(bad_yaml)], r"broken.yaml")
    extra = tmp_path / "extra.yaml"
    from conftest import TINY_PROTOCOL

    extra.write_text(TINY_PROTOCOL.format(name="extra") + "colour: blue\n")
    fails(capsys, ["validate", str(extra)], r"colour")


# -- checkpoints -----------------------------------------------------------------------------------
class Payload:
    """An arbitrary object: a pickle that torch.load(weights_only=True) must refuse."""


def test_pickle_and_foreign_checkpoints_are_refused(capsys, tiny_protocol, tmp_path):
    pickled = tmp_path / "model.pth"
    torch.save({"weight": torch.zeros(1), "extra": Payload()}, pickled)
    base = ["run", "--protocol", str(tiny_protocol), "--detector", "clip_linear", "--out", str(tmp_path / "r"), *TINY]
    fails(capsys, [*base, "--eval-only", "--checkpoint", str(pickled)], r"cannot be read as a PyTorch state dict")
    fails(capsys, [*base, "--eval-only", "--checkpoint", str(tmp_path / "missing.pth")], r"does not exist")
    no_finished_runs(tmp_path)


# -- data --------------------------------------------------------------------------------------------
def _folder_protocol(tmp_path, name="folderbad"):
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            for i in range(4):
                write_image(root / "ds" / split / label / f"{i}.png", size=(40, 40), seed=hash((split, label, i)) % 997)
    proto = tmp_path / f"{name}.yaml"
    proto.write_text(f"""name: {name}
version: 1
description: folder data with bad files
sources:
  ds: {{type: folder, root: ds, layout: "{{split}}/{{label}}"}}
train: {{source: ds, split: train}}
val: {{source: ds, split: val, select: "best:auc"}}
test:
  t: {{source: ds, split: test}}
metrics: [auc]
primary: auc@t
budget: {{max_epochs: 1}}
seeds: [0]
""")
    return proto, root


@pytest.mark.parametrize("kind", ["zero_byte", "truncated_png", "random_bytes"])
def test_unreadable_images_stop_the_run_naming_the_file(capsys, tmp_path, kind):
    proto, root = _folder_protocol(tmp_path)
    write_bad(root / "ds" / "test" / "1_fake" / "2.png", kind)
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"1_fake/2\.png.*--skip-bad-images")
    no_finished_runs(tmp_path)


def test_a_text_file_with_an_image_extension_is_an_unreadable_image(capsys, tmp_path):
    proto, root = _folder_protocol(tmp_path)
    (root / "ds" / "val" / "0_real" / "notes.png").write_text("this is not an image\n")
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"notes\.png")


def test_one_class_test_split_and_missing_data_root(capsys, tmp_path):
    proto, root = _folder_protocol(tmp_path)
    for path in (root / "ds" / "test" / "0_real").iterdir():
        path.unlink()
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"0 real and 4 fake")
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root",
                   str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs"), *TINY], r"nowhere")
    no_finished_runs(tmp_path)


def test_bad_label_values_in_a_manifest(capsys, tmp_path):
    root = tmp_path / "data"
    write_image(root / "a.png", size=(40, 40))
    (root / "index.csv").write_text("path,label,split\na.png,maybe,test\n")
    proto = tmp_path / "manifestbad.yaml"
    proto.write_text("""name: manifestbad
version: 1
description: a manifest with a bad label
sources:
  m: {type: manifest, path: index.csv}
train: {source: m, split: test}
val: {source: m, split: test}
test:
  t: {source: m, split: test}
metrics: [auc]
primary: auc@t
""")
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"maybe")


# -- detectors that break the contract or produce unusable numbers ------------------------------------
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


@pytest.mark.parametrize("cls, match", [
    (WideOutput, r"breaks the adapter contract: forward returned shape \(2, 1\), expected \(2,\)"),
    (FloatStep, r"train_step returned float; return a dict"),
    (CallsSelf, r"train_step never called ctx.model"),
    (NeverSteps, r"left every trainable parameter unchanged"),
    (NotDataclass, r"Config of detector .* is not a dataclass"),
])
def test_adapters_that_break_the_contract_are_refused_in_one_sentence(capsys, plugin, tiny_protocol, tmp_path,
                                                                        cls, match):
    name = plugin(f"bad_{cls.__name__.lower()}", cls)
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs")],
          match)
    no_finished_runs(tmp_path)
    assert not list((tmp_path / "runs").glob("*/*/*")), "a run refused before training left its directory"


def test_non_finite_scores_stop_the_run_naming_detector_set_and_ids(capsys, plugin, tiny_protocol, tmp_path):
    name = plugin("nan_on_fakes", NanOnFakes)
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs"),
                   "--batch-size", "8"], r"Detector 'nan_on_fakes' returned non-finite .* for \d+ of \d+ images \(first: .*\)")
    no_finished_runs(tmp_path)


def test_a_non_finite_loss_stops_training_at_its_step(capsys, plugin, tiny_protocol, tmp_path):
    name = plugin("nan_loss", NanLoss)
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", name, "--out", str(tmp_path / "runs"),
                   "--batch-size", "8"], r"'nan_loss' produced a non-finite loss \(nan\) at step 1")


def test_diverged_training_stops_at_the_step_and_names_the_setting(capsys, tiny_protocol, tmp_path):
    fails(capsys, ["run", "--protocol", str(tiny_protocol), "--detector", "sam", "--out", str(tmp_path / "runs"),
                   *TINY, "-o", "lr=1e30", "--batch-size", "8"], r"diverged at step \d+ .*lower the learning rate")
    no_finished_runs(tmp_path)


def test_interrupt_leaves_an_incomplete_run_and_one_line(capsys, tiny_protocol, tmp_path, monkeypatch):
    from bench.run import runner
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.Runner, "predict", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--protocol", str(tiny_protocol), "--detector", "clip_linear", "--out", str(tmp_path / "runs"),
              *TINY])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == 130 and err.startswith("interrupted:") and "Traceback" not in err
    (run_dir,) = list((tmp_path / "runs").glob("*/*/*"))
    assert (run_dir / "INCOMPLETE").exists() and not (run_dir / "results.json").exists()
    from bench.errors import BenchError
    from bench.run.results import read_results

    with pytest.raises(BenchError, match="unfinished run"):
        read_results(run_dir)  # never mistaken for a finished run by readers (eval-only, diagnose, sweep)


# -- data that is converted, refused or skipped, through the CLI -------------------------------------
def _run_folder(tmp_path, proto, root, *extra):
    main(["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
          "--out", str(tmp_path / "runs"), *TINY, "--batch-size", "4", *extra])
    (results,) = list((tmp_path / "runs").glob("*/*/*/results.json"))
    return json.loads(results.read_text())


def test_a_decompression_bomb_is_an_unreadable_image_that_can_be_skipped(capsys, tmp_path):
    from test_decode import png

    proto, root = _folder_protocol(tmp_path)
    (root / "ds" / "test" / "1_fake" / "bomb.png").write_bytes(png(14000, 14000, 8, 2, rows=b"\x00"))
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"bomb\.png is .*above the limit")
    result = _run_folder(tmp_path, proto, root, "--skip-bad-images")
    assert result["skipped_images"]["count"] == 1 and result["data"]["t"]["skipped"] == 1
    assert result["origin"]["rankable"] is False and "skipped" in result["origin"]["reasons"][0]


def test_animated_and_16bit_images_are_converted_and_recorded(tmp_path):
    from images import make_image
    from PIL import Image

    proto, root = _folder_protocol(tmp_path)
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(root / "ds" / "test" / "1_fake" / "anim.gif", save_all=True, append_images=frames[1:])
    make_image("I;16", (40, 40), seed=3).save(root / "ds" / "test" / "0_real" / "deep.png")
    (root / "ds" / "test" / "0_real" / "readme.txt").write_text("not an image\n")
    result = _run_folder(tmp_path, proto, root)
    assert result["data"]["t"]["conversions"] == {"animated_first_frame": 1, "16bit": 1}
    assert sum(result["data"]["t"]["left_out_files"].values()) == 1  # the .txt file, counted


def test_symlink_loops_and_paths_leaving_the_data_root_are_refused(capsys, tmp_path):
    proto, root = _folder_protocol(tmp_path)
    (root / "ds" / "train" / "1_fake" / "loop").symlink_to("..")
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"loop is a symbolic link to .*on its own path")
    (root / "ds" / "train" / "1_fake" / "loop").unlink()
    escape = tmp_path / "escape.yaml"
    escape.write_text(proto.read_text().replace("root: ds,", "root: ../../etc,").replace("folderbad", "escape"))
    fails(capsys, ["run", "--protocol", str(escape), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"leaves the data root")
    no_finished_runs(tmp_path)


def test_the_same_file_reached_twice_in_a_split_is_refused(capsys, tmp_path):
    proto, root = _folder_protocol(tmp_path)
    (root / "ds" / "test" / "1_fake" / "again.png").symlink_to(root / "ds" / "test" / "1_fake" / "0.png")
    fails(capsys, ["run", "--protocol", str(proto), "--detector", "clip_linear", "--data-root", str(root),
                   "--out", str(tmp_path / "runs"), *TINY], r"(reached twice|twice)")
