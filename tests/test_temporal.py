"""Temporal protocols: rounds in release order, each trained on its windows and tested on the next one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.api import round_detector, run
from bench.cli import main
from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.protocol import load_protocol
from bench.protocol.rounds import Rounds, round_protocols
from bench.run import rounds as run_rounds
from bench.run import training
from bench.run.rounds import Round, RoundResult
from bench.run.runner import Runner, RunnerOptions

ORDER = ["upsample_nearest", "blend_ellipse", "peaks_p4", "inpaint_smooth", "resynth_lowpass"]

TEMPORAL = """\
name: {name}
version: 1
description: A tiny temporal protocol for tests.
sources:
  synth: {{type: synthetic, image_size: 32, n_per_class: {{train: 6, val: 6, test: 6}}, seed: 0}}
detector_defaults: {{backbone: "timm:tf_efficientnet_lite0@imagenet-offline", image_size: 32}}
train: {{source: synth, split: train}}
val: {{source: synth, split: val, select: "best:auc"}}
rounds:
  order: [{order}]
  window: 2
  training: {training}
  init: {init}
  test: {{source: synth, split: test}}
metrics: [auc, ap, eer, acc]
primary: auc@next
budget: {{max_epochs: 2}}
seeds: [0]
"""


def write(tmp_path, name="temporal", order=ORDER, training="cumulative", init="fresh", edit=None):
    text = TEMPORAL.format(name=name, order=", ".join(order), training=training, init=init)
    if edit is not None:
        text = text.replace(*edit)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("training, trained", [
    ("cumulative", [ORDER[:2], ORDER[:4]]),
    ("sliding", [ORDER[:2], ORDER[2:4]]),
])
def test_round_k_trains_and_selects_on_exactly_its_windows_and_tests_on_the_next(tmp_path, training, trained):
    proto = load_protocol(write(tmp_path, training=training))
    rounds = round_protocols(proto)
    assert [plan.index for plan, _ in rounds] == [1, 2]
    nexts = [ORDER[2:4], ORDER[4:]]
    for (plan, own), train, following in zip(rounds, trained, nexts):
        assert own.train.subsets == train and own.val.subsets == train  # val: the same windows' val
        assert own.test[f"r{plan.index}_next"].subsets == following
        assert own.test[f"r{plan.index}_growing"].subsets == ORDER[:2 * plan.index]  # released so far
        assert not set(following) & set(train)  # the next period is never trained on
        assert set(own.test) == {f"r{plan.index}_next", f"r{plan.index}_growing"}
    assert proto.groups == {"next": ["r1_next", "r2_next"], "growing": ["r1_growing", "r2_growing"]}
    assert proto.primary == "auc@next"


def test_the_last_window_may_be_short_and_every_generator_is_tested_once_as_next():
    plans = Rounds(order=list("abcdefg"), window=3, test={"source": "s", "split": "test"}).plans()
    assert [p.next for p in plans] == [("d", "e", "f"), ("g",)]
    assert [p.train for p in plans] == [("a", "b", "c"), tuple("abcdef")]


@pytest.mark.parametrize("edit, match", [
    (("inpaint_smooth, resynth_lowpass", "inpaint_smooth, peaks_p4"), r"'rounds.order'.*lists 'peaks_p4' twice"),
    (("blend_ellipse, peaks_p4, inpaint_smooth, resynth_lowpass", "blend_ellipse"),
     r"'rounds'.*one window of 2: a round needs a later window"),
    (("split: train}", "split: train, subsets: [peaks_p4]}"), r"'train.subsets'.*the rounds set these subsets"),
    (("test: {source: synth, split: test}", "test: {source: synth, split: test, subsets: [a]}"),
     r"'rounds.test.subsets'.*the rounds set these subsets"),
    (("metrics:", "test: {t: {source: synth, split: test}}\nmetrics:"),
     r"'test'.*test sets come from its rounds; remove `test`"),
])
def test_a_malformed_temporal_protocol_is_one_sentence_at_its_key(tmp_path, edit, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_protocol(write(tmp_path, edit=edit))
    assert "\n" not in str(info.value)


def test_a_continued_round_starts_from_the_previous_rounds_weights_and_a_fresh_one_does_not(tmp_path):
    proto = load_protocol(write(tmp_path, init="continued"))
    spec = resolve_detector("clip_linear", {}, proto.detector_defaults)
    runner = Runner(RunnerOptions(batch_size=8), 0, "clip_linear")
    plans = [plan for plan, _ in round_protocols(proto)]
    first, _ = round_detector(spec, Round(plans[0], proto, {}, "continued"), [], None, runner, eval_only=False)
    weights = {k: torch.full_like(v, 0.25) for k, v in first.state_dict().items() if k.startswith("head")}
    assert weights, "clip_linear has a trained head"
    done = [RoundResult({}, {}, pd.DataFrame(), {}, {}, 0.0, 0.0, weights)]
    continued, _ = round_detector(spec, Round(plans[1], proto, {}, "continued"), done, None, runner, False)
    fresh, _ = round_detector(spec, Round(plans[1], proto, {}, "fresh"), done, None, runner, False)
    for key, value in weights.items():
        assert torch.equal(continued.state_dict()[key], value)
        assert not torch.equal(fresh.state_dict()[key], value)
    assert [e["round"] for e in runner.log if e.get("event") == "round"] == [1, 2, 2]


@pytest.mark.slow
def test_a_temporal_run_stores_every_round_and_ranks_on_the_mean_next_period_auc(tmp_path):
    result = run(write(tmp_path), "clip_linear", out_dir=tmp_path / "runs", opts=RunnerOptions(batch_size=16))
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert [r["train"] for r in rounds] == [ORDER[:2], ORDER[:4]] and [r["next"] for r in rounds] == [ORDER[2:4],
                                                                                                    ORDER[4:]]
    for r in rounds:
        assert r["selection"]["rule"] == "best:auc" and r["val_split"] == f"r{r['round']}_val"
        assert r["threshold"]["split"] == f"r{r['round']}_val" and np.isfinite(r["threshold"]["value"])
        assert r["selection"]["n_train"] == 2 * 6 * len(r["train"])  # the windows' reals and fakes, nothing else
    nexts = [result["metrics"][r["tests"]["next"]]["auc"] for r in rounds]
    assert result["groups"]["next"]["auc"] == pytest.approx(np.mean(nexts))
    assert set(result["metrics"]) == {"r1_next", "r1_growing", "r2_next", "r2_growing"}
    run_dir = tmp_path / "runs" / "temporal" / "clip_linear" / result["run_id"]
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["rounds"] == json.loads(json.dumps(rounds))


def _only_run(root):
    runs = [p for p in root.glob("*/*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _die_after_round_one(monkeypatch):
    import bench.api

    save = run_rounds.save_round

    def save_then_die(run_dir, runner, rnd, result, det):
        out = save(run_dir, runner, rnd, result, det)
        if rnd.index == 1:
            raise KeyboardInterrupt  # as if killed right after round 1 was kept
        return out

    monkeypatch.setattr(bench.api, "save_round", save_then_die)


def _die_in_round_two_after_its_first_epoch(monkeypatch):
    save = training.save_state

    def save_then_die(run_dir, runner, detector, optimizer, scheduler, progress, *args, **kwargs):
        save(run_dir, runner, detector, optimizer, scheduler, progress, *args, **kwargs)
        if progress["round"] == 2 and progress["epoch"] == 1:
            raise KeyboardInterrupt  # killed in round 2, with one of its two epochs done

    monkeypatch.setattr(training, "save_state", save_then_die)


@pytest.mark.slow
@pytest.mark.parametrize("kill", [_die_after_round_one, _die_in_round_two_after_its_first_epoch])
def test_a_temporal_run_killed_mid_sequence_resumes_to_the_same_numbers(tmp_path, monkeypatch, capsys, kill):
    protocol = write(tmp_path, init="continued")  # the resumed round 2 must also find round 1's weights
    overrides = {"tune": "norm", "image_size": 32}
    full = run(protocol, "sam", overrides=overrides, out_dir=tmp_path / "full", opts=RunnerOptions(batch_size=8))
    kill(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(protocol, "sam", overrides=overrides, out_dir=tmp_path / "killed", opts=RunnerOptions(batch_size=8))
    killed = _only_run(tmp_path / "killed")
    assert not (killed / "results.json").exists()
    monkeypatch.undo()

    main(["run", "--resume", str(killed)])
    capsys.readouterr()
    resumed = json.loads((killed / "results.json").read_text())
    assert resumed["metrics"] == full["metrics"] and resumed["groups"] == full["groups"]
    assert [r["selection"]["history"] for r in resumed["rounds"]] == [r["selection"]["history"]
                                                                     for r in full["rounds"]]
    assert [r["threshold"] for r in resumed["rounds"]] == [r["threshold"] for r in full["rounds"]]
    if kill is _die_in_round_two_after_its_first_epoch:
        assert resumed["rounds"][1]["selection"]["resumed_from_epoch"] == 1
    for test in full["metrics"]:
        a = pd.read_csv(tmp_path / "full" / "temporal" / "sam" / full["run_id"] / "predictions" / f"{test}.csv.gz")
        b = pd.read_csv(killed / "predictions" / f"{test}.csv.gz")
        assert a["score"].tolist() == b["score"].tolist()


def test_the_embedded_temporal_grids_run_every_built_in_detector_the_main_four_over_three_seeds():
    from pathlib import Path

    from bench.grid.spec import load_grid
    from bench.plugin.registry import DETECTORS

    grids = Path(__file__).parents[1] / "examples" / "grids"
    main_four, rest = (load_grid(grids / f"{name}.yaml") for name in ("embedded_temporal", "embedded_temporal_seed0"))
    assert main_four.protocols == rest.protocols == ["synthetic_temporal"]
    assert main_four.detectors == ["clip_linear", "univfd", "sam", "corit"] and main_four.seeds == "protocol"
    assert load_protocol("synthetic_temporal").seeds == [0, 1, 2] and rest.seeds == [0]
    built_in = {n for n in DETECTORS.names() if DETECTORS.entry(n).provider.startswith("forgery-bench")}
    assert sorted(main_four.detectors + rest.detectors) == sorted(built_in)


def test_show_lists_the_rounds_and_counts_each_rounds_own_splits(tmp_path, capsys):
    from conftest import run_cli

    code, out, _ = run_cli(["show", "protocol", str(write(tmp_path))], capsys)
    assert code == 0
    assert ("# round 1 (cumulative, fresh): train and select on upsample_nearest, blend_ellipse; next period "
            "peaks_p4, inpaint_smooth; growing: 2 generators") in out
    counts = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("r")}
    assert counts["r1/train"] == ["12", "12"] and counts["r2/train"] == ["24", "24"]  # 6 per class per generator
    assert counts["r2/test/r2_next"] == ["6", "6"] and "train" not in counts


def test_data_verify_checks_each_rounds_own_train_and_val(tmp_path):
    from bench.data.verify import verify_protocol

    report = verify_protocol(write(tmp_path), None, check_images=False, hash_files=False)
    counts = {c.name: (c.n_real, c.n_fake) for c in report.splits}
    assert list(counts) == ["r1/train", "r1/val", "test/r1_next", "test/r1_growing",
                            "r2/train", "r2/val", "test/r2_next", "test/r2_growing"]
    assert counts["r1/train"] == (12, 12) and counts["r2/val"] == (24, 24) and not report.errors
