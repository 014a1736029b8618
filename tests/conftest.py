"""Shared fixtures: offline hub settings, a tiny synthetic protocol, and registry isolation."""

import os

# Must be set before huggingface_hub is imported anywhere, or a missing weight costs ~46 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

import pytest

TINY_PROTOCOL = """\
name: {name}
version: 1
description: A tiny synthetic protocol for tests.
sources:
  synth: {{type: synthetic, image_size: 32, n_per_class: {{train: 12, val: 8, test: 8}}, seed: 0}}
detector_defaults: {{backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}}
train: {{source: synth, split: train, subsets: [upsample_nearest]}}
val: {{source: synth, split: val, subsets: [upsample_nearest], select: "best:auc"}}
test:
  upsample_nearest: {{source: synth, split: test, subsets: [upsample_nearest]}}
  blend_ellipse: {{source: synth, split: test, subsets: [blend_ellipse]}}
  peaks_p4: {{source: synth, split: test, subsets: [peaks_p4]}}
groups:
  in_domain: [upsample_nearest]
  unseen: [blend_ellipse, peaks_p4]
metrics: [auc, ap, eer, acc]
primary: auc@unseen
budget: {{max_epochs: 2}}
seeds: [0, 1]
"""


FOLDER_PROTOCOL = """\
name: {name}
version: 1
description: {description}
sources: {{ds: {{type: folder, root: ds, layout: "{{split}}/{{label}}"}}}}
detector_defaults: {{backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}}
train: {{source: ds, split: train}}
val: {{source: ds, split: val}}
test: {{t: {{source: ds, split: test}}}}
metrics: [auc]
primary: auc@t
"""


def write_folder_protocol(path: Path, description: str) -> Path:
    """A protocol named after ``path`` over one folder source ``ds/{split}/{label}`` (test set ``t``)."""
    path.write_text(FOLDER_PROTOCOL.format(name=path.stem, description=description))
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``bench ARGS`` in this process: (exit code, stdout, stderr)."""
    from bench.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def write_tiny_protocol(directory: Path, name: str = "tiny") -> Path:
    """Write the tiny protocol as ``directory/<name>.yaml`` and return its path."""
    path = Path(directory) / f"{name}.yaml"
    path.write_text(TINY_PROTOCOL.format(name=name))
    return path


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tests use tiny tensors: with two cores (or other jobs on them), extra OpenMP threads only wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_protocol(tmp_path: Path) -> Path:
    """Path of a tiny synthetic protocol (32 px, a few dozen images)."""
    return write_tiny_protocol(tmp_path)


@pytest.fixture(autouse=True)
def private_feature_cache(tmp_path, monkeypatch):
    """Each test gets its own feature cache: no test reads features another one stored."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "feature-cache"))


@pytest.fixture
def refused(capsys, tmp_path):
    """``refused(argv, match, out=None)``: run ``bench argv`` and assert the bad-input contract.

    Exit 2, one ``error:`` line matching ``match``, no traceback, and nothing under ``tmp_path``
    outside ``--out`` (or ``out``) created or changed (:func:`bad_input.refuses`).
    """
    from bad_input import refuses

    return lambda argv, match, out=None: refuses(capsys, tmp_path, argv, match, out)
