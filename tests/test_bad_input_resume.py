"""Bad input through the CLI, part 4: what ``--resume`` must find unchanged, its lock, submitted predictions.

Refusals go through the ``refused`` fixture (exit 2, one ``error:`` line, no traceback, nothing
written outside the run's ``--out``).
"""

from __future__ import annotations

import gzip
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from bad_input import folder_protocol
from conftest import TINY_PROTOCOL
from images import write_image

from bench.api import run
from bench.cli import main
from bench.plugin.registry import PROTOCOLS
from bench.run import training
from bench.run.runner import RunnerOptions

SAM = {"tune": "norm", "image_size": 32, "backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "epochs": 2}


def killed_run(tmp_path, monkeypatch, proto, data_root=None) -> Path:
    """A sam run of ``proto`` killed right after its first epoch's state was saved; returns its directory."""
    save = training.save_state

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(training, "save_state", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            run(proto, "sam", overrides=SAM, data_root=data_root, out_dir=tmp_path / "runs",
                opts=RunnerOptions(batch_size=4))
    (run_dir,) = [p for p in (tmp_path / "runs").glob("*/*/*") if p.is_dir()]
    assert (run_dir / "INCOMPLETE").exists() and (run_dir / "state").is_dir()
    return run_dir


def test_a_resume_refuses_changed_images_protocol_and_settings(refused, tmp_path, monkeypatch):
    proto, root = folder_protocol(tmp_path, name="resumed", n=4)
    proto.write_text(proto.read_text().replace("max_epochs: 1", "max_epochs: 2"))
    run_dir = killed_run(tmp_path, monkeypatch, proto, root)
    resume = ["run", "--resume", str(run_dir)]
    out = tmp_path / "runs"
    image = root / "ds" / "test" / "1_fake" / "1.png"
    original = image.read_bytes()
    write_image(image, size=(40, 40), seed=999)  # other pixels: the AUC could move
    refused(resume, r"The images of split 't' changed since .* started .*start a new run", out)
    image.write_bytes(original)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # a touched file is a change
    refused(resume, r"The images of split 't' changed", out)
    image.write_bytes(original)
    text = proto.read_text()
    proto.write_text(text.replace("primary: auc@t", "primary: auc@t\ngroups: {all: [t]}"))
    refused(resume, r"The protocol of .* changed since the run started \(hash \w{12} then, \w{12} now\)", out)
    proto.write_text(text)
    config = run_dir / "config.yaml"
    saved = config.read_text()
    edited = yaml.safe_load(saved)
    edited["arguments"]["overrides"]["lr"] = 0.5
    config.write_text(yaml.safe_dump(edited, sort_keys=False))
    refused(resume, r"The settings of .* differ from those it started with \(its config\.yaml was edited", out)
    config.write_text(saved)
    assert (run_dir / "INCOMPLETE").exists() and not (run_dir / "results.json").exists()


@pytest.mark.slow  # a second process holds the lock, then is killed
def test_only_one_run_writes_a_run_directory_and_a_crashed_holder_frees_it(refused, tiny_protocol, tmp_path,
                                                                            monkeypatch, capsys):
    run_dir = killed_run(tmp_path, monkeypatch, tiny_protocol)
    holder = subprocess.Popen([sys.executable, "-c", ("import sys, time\nfrom bench.run.resume import RunLock\n"
                               "lock = RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)"),
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused(["run", "--resume", str(run_dir)], rf"{run_dir} is being written by another bench run \(pid "
                rf"{holder.pid} on .*\); wait for it to end", tmp_path / "runs")
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops its lock
        holder.wait()
    time.sleep(0.1)
    main(["run", "--resume", str(run_dir)])
    assert (run_dir / "results.json").is_file() and not (run_dir / ".lock").exists()
    assert "sam" in capsys.readouterr().out


def test_a_run_started_by_an_older_bench_is_not_resumed_blindly(refused, tiny_protocol, tmp_path, monkeypatch):
    run_dir = killed_run(tmp_path, monkeypatch, tiny_protocol)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config.pop("resume_guard")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    refused(["run", "--resume", str(run_dir)], r"config\.yaml has no resume_guard .*start a new run", tmp_path / "runs")


def test_a_resume_refuses_other_decoding_rules_or_another_code_revision(refused, tiny_protocol, tmp_path,
                                                                        monkeypatch):
    from bench.data import decode

    run_dir = killed_run(tmp_path, monkeypatch, tiny_protocol)
    resume, out, started = ["run", "--resume", str(run_dir)], tmp_path / "runs", decode.DECODE_VERSION
    with monkeypatch.context() as patch:
        patch.setattr(decode, "DECODE_VERSION", "999")
        refused(resume, r"The code changed since .* started \(the image decoding rules \(DECODE_VERSION\): "
                        rf"{started} then, 999 now\); resume it with the code that started it", out)
    path = run_dir / "config.yaml"
    saved = path.read_text()
    config = yaml.safe_load(saved)
    config["resume_guard"]["code"]["source"] = "0" * 64  # as if bench/ or detectors/ had other source then
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    refused(resume, r"The code changed since .* \(the Python source of bench/ and detectors/ \(sha256\): 0{64} then, ", out)
    config["resume_guard"].pop("code")  # a guard written before the code was recorded
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    refused(resume, r"config\.yaml records no code version in its resume_guard .*start a new run", out)
    path.write_text(saved)
    assert (run_dir / "INCOMPLETE").exists() and not (run_dir / "results.json").exists()


# -- submitted predictions must be the run's ------------------------------------------------------------
@pytest.fixture
def registered_tiny(tmp_path, monkeypatch):
    """The tiny protocol shipped by a protocol pack registered for this test (so a run of it can be submitted)."""
    pack = tmp_path / "site" / "tiny_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text("")
    (pack / "tiny.yaml").write_text(TINY_PROTOCOL.format(name="tiny"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    PROTOCOLS.add("tiny_pack", importlib.import_module("tiny_pack"))
    yield "tiny"
    PROTOCOLS.remove("tiny_pack")
    sys.modules.pop("tiny_pack", None)


def test_submit_refuses_predictions_edited_after_the_run(refused, registered_tiny, tmp_path):
    main(["run", "--protocol", registered_tiny, "--detector", "clip_linear", "--out", str(tmp_path / "runs"),
          "--run-name", "r0", "--batch-size", "16"])
    run_dir = tmp_path / "runs" / "tiny" / "clip_linear" / "r0"
    path = run_dir / "predictions" / "peaks_p4.csv.gz"
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    fakes = [i for i, line in enumerate(lines[1:], start=1) if line.split(",")[5] == "1"]
    a, b = fakes[0], fakes[1]
    cells_a, cells_b = lines[a].split(","), lines[b].split(",")
    assert cells_a[6] != cells_b[6]
    cells_a[6], cells_b[6] = cells_b[6], cells_a[6]  # two same-class scores swapped: every metric is unchanged
    lines[a], lines[b] = ",".join(cells_a), ",".join(cells_b)
    original = path.read_bytes()
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    board = tmp_path / "board"
    refused(["leaderboard", "submit", str(run_dir), "--leaderboard-dir", str(board)],
            r"peaks_p4\.csv\.gz is not the predictions file the run wrote \(sha256 \w{12}, results\.json records "
            r"\w{12}\); it was edited after the run", out=board)
    path.write_bytes(original)
    main(["leaderboard", "submit", str(run_dir), "--leaderboard-dir", str(board)])
    assert list(Path(board).glob("results/tiny/clip_linear/r0.json"))
