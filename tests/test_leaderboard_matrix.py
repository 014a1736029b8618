"""GenImage's 8 x 8 matrix: the genimage_matrix_<generator> protocols laid out on one family page."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from board import commit, predictions

from bench.leaderboard import build
from bench.leaderboard.matrix import FAMILIES
from bench.metrics import compute_metrics
from bench.plugin.factory import resolve_detector
from bench.protocol import load_protocol
from bench.run import record
from bench.run.runner import RunnerOptions

GENS = FAMILIES["genimage_matrix"]


@pytest.fixture(scope="module")
def built_detector():
    spec = resolve_detector("clip_linear", {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline",
                                            "image_size": 32})
    return spec, spec.build()


def stored(spec, det, trained_on: str, seed: int, separation: float) -> tuple[dict, object]:
    """A result of protocol genimage_matrix_<trained_on> written by the run's own writer (record.assemble)."""
    proto = load_protocol(f"genimage_matrix_{trained_on}")
    frame = predictions(separation, seed, tests=list(proto.test), noise_seed=seed)
    frame.loc[(frame["test_set"] == trained_on) & (frame["label"] == 1), "score"] += 3.0  # in-domain is easier
    metrics = {t: compute_metrics(p["label"], p["score"], proto.metrics, where=t)
               for t, p in frame.groupby("test_set", sort=False)}
    runner = SimpleNamespace(opts=RunnerOptions(), workers_used={}, precision="no", cache=None,
                             accelerator=SimpleNamespace(device="cpu", num_processes=1))
    arguments = {"limit": None, "perturb": None, "eval_only": False, "checkpoint": None, "overrides": {},
                 "check_images": False, "command": "bench run"}
    result = record.assemble(run_dir=Path(f"20261207-21000{seed}-s{seed}"), proto=proto, spec=spec, det=det,
                             seed=seed, selection={"rule": "best:acc", "epoch": 1}, metrics=metrics, splits={},
                             runner=runner, arguments=arguments, timing={"started_at": "2026-12-07T21:00:00+00:00"},
                             absent={}, conversions={}, threshold={"value": 0.0}, predictions=None)
    return json.loads(json.dumps(result)), frame


def test_the_family_page_shows_one_matrix_per_detector_with_the_per_test_mean(tmp_path, built_detector):
    spec, det = built_detector
    lb = tmp_path / "lb"
    trained = ["sd_v1_4", "adm", "biggan"]  # three rows run; the page lists the other five as not run
    for g in trained:
        for seed in (0, 1):
            result, frame = stored(spec, det, g, seed, 0.5)
            commit(lb, result, frame)
    build(lb)
    page = (lb / "genimage_matrix.md").read_text()
    assert "Not run yet: midjourney, sd_v1_5, glide, wukong, vqdm." in page
    lines = page[page.index("### clip_linear (acc)"):].splitlines()
    header = next(line for line in lines if line.startswith("| trained on"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["trained on \\ tested on", *GENS, "mean"]
    rows = {r.split("|")[1].strip(): [float(c) for c in r.strip("|").split("|")[1:]]
            for r in lines if r.startswith("| ") and not r.startswith("| trained")}
    assert list(rows) == [*trained, "mean over 3 training generator(s)"]
    for g in trained:  # each cell is its protocol's own per-test value (mean over seeds), as on its page
        table = json.loads((lb / "index.json").read_text())
        (t,) = [p for p in table["protocols"] if p["name"] == f"genimage_matrix_{g}"]
        (entry,) = t["entries"]
        assert rows[g][:8] == pytest.approx([entry["metrics"][s]["acc"]["mean"] for s in GENS], abs=5e-4)
        assert rows[g][GENS.index(g)] == max(rows[g][:8])  # the diagonal: trained on it
    means = rows["mean over 3 training generator(s)"]
    for i in range(8):
        assert means[i] == pytest.approx(sum(rows[g][i] for g in trained) / 3, abs=1e-3)
    assert (lb / "genimage_matrix_adm.md").is_file()  # each row keeps its own page


def test_no_family_page_without_its_protocols(tmp_path):
    from board import board

    build(board(tmp_path / "lb", {"a": 1.0}, seeds=(0,)))
    assert not (tmp_path / "lb" / "genimage_matrix.md").exists()
