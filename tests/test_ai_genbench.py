"""AI-GenBench: its saved release read with reals paired to generators, its windows, and its degradation chain."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.holdout import held_out
from bench.data.perturb import apply_perturb
from bench.data.perturb_chains import MAX_SIDE, ai_genbench
from bench.data.splits import build_sources, resolve_all
from bench.errors import ConfigError, DataError
from bench.protocol import Perturb, load_protocol
from bench.protocol.rounds import round_protocols

datasets = pytest.importorskip("datasets")

PROTOCOL = load_protocol("ai_genbench_windows")
ORDER = PROTOCOL.rounds.order
CHAIN = Perturb(chain="ai_genbench")
PATH = "AI-GenBench/ai_gen_bench_v1.0.0"  # where AI-GenBench's build script writes the release


def _ids(prefix: str, n_kept: int, n_held: int) -> list[str]:
    """``n_kept`` ids that stay in train and ``n_held`` that the held-out rule sends to val."""
    kept, held, i = [], [], 0
    while len(kept) < n_kept or len(held) < n_held:
        key = f"{prefix}{i}"
        (held if held_out(key) else kept).append(key)
        i += 1
    return kept[:n_kept] + held[:n_held]


def _split(generators: list[str], n_kept: int, n_held: int, extra_reals: int = 0) -> dict[str, list]:
    rows = {"image": [], "label": [], "generator": [], "file_id": []}
    rng = np.random.default_rng(len(generators))
    for g in [*generators, *[""] * len(generators)]:  # one block of reals per generator, as the release has
        for key in _ids(f"{g or 'real'}-{len(rows['file_id'])}-", n_kept, n_held):
            rows["image"].append(Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)))
            rows["label"].append(int(g != ""))
            rows["generator"].append(g)
            rows["file_id"].append(key)
    for i in range(extra_reals):
        rows["image"].append(rows["image"][0])
        rows["label"].append(0)
        rows["generator"].append("")
        rows["file_id"].append(f"extra{i}")
    return rows


def make_release(root, generators=ORDER, n_kept=4, n_held=2, n_test=3, extra_reals=0):
    """A miniature AI-GenBench release as its build script saves it (train and validation splits)."""
    # The column types of AI-GenBench's build (DEEPFAKE_DATASET_FEATURES): a real/fake ClassLabel, large strings.
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"]),
                                  "generator": datasets.Value("large_string"),
                                  "file_id": datasets.Value("large_string")})
    release = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(_split(generators, n_kept, n_held, extra_reals), features=features),
        "validation": datasets.Dataset.from_dict(_split(generators, n_test, 0), features=features),
    })
    release.save_to_disk(str(root / "AI-GenBench" / "ai_gen_bench_v1.0.0"))
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("aigb"))


def test_each_round_trains_on_its_windows_with_their_paired_reals_and_tests_on_the_next(release):
    rounds = round_protocols(PROTOCOL)
    assert len(rounds) == 8 and PROTOCOL.rounds.init == "continued"
    for plan, own in rounds:
        splits = resolve_all(own, build_sources(own, release))
        train, val = splits["train"].table, splits["val"].table
        windows = ORDER[:4 * plan.index]
        assert sorted(set(train["subset"])) == sorted(windows) == sorted(set(val["subset"]))
        # A real image has no generator: it goes with the fake it is paired with, so every window is balanced.
        assert splits["train"].counts() == (4 * len(windows), 4 * len(windows))
        assert splits["val"].counts() == (2 * len(windows), 2 * len(windows))
        assert set(train["id"]).isdisjoint(val["id"])
        nxt, growing = splits[f"test/r{plan.index}_next"].table, splits[f"test/r{plan.index}_growing"].table
        assert sorted(set(nxt["subset"])) == sorted(ORDER[4 * plan.index:4 * plan.index + 4])
        assert set(nxt["subset"]).isdisjoint(train["subset"]) and sorted(set(growing["subset"])) == sorted(windows)
        assert splits[f"test/r{plan.index}_next"].counts() == (12, 12)
        # The mandatory degradations hit validation and test images, real and fake alike, never training ones.
        assert set(train["ops"]) == {()}
        assert set(val["ops"]) == {(CHAIN,)} == set(nxt["ops"])


def test_the_pairing_is_fixed_by_its_seed_and_each_real_joins_exactly_one_generator(release):
    def reals(seed):
        proto = PROTOCOL.model_copy(update={"sources": {"aigb": {"type": "ai_genbench", "path": PATH,
                                                                 "pair_seed": seed}}})
        table = build_sources(proto, release)["aigb"].select("test")
        return dict(zip(table.loc[table["label"] == 0, "id"], table.loc[table["label"] == 0, "subset"]))

    first, again, other = reals(1337), reals(1337), reals(7)
    assert first == again and first != other
    assert sorted(first.values()) == sorted(ORDER * 3)  # three reals per generator, every real placed once


def test_an_unbalanced_release_and_a_missing_column_are_one_sentence(tmp_path):
    make_release(tmp_path, generators=ORDER[:2], extra_reals=3)
    source = build_sources(PROTOCOL, tmp_path)["aigb"]
    with pytest.raises(DataError, match=r"split 'train' holds 15 real and 12 fake images, but AI-GenBench pairs"):
        source.select("train")
    proto = PROTOCOL.model_copy(update={"sources": {"aigb": {"type": "ai_genbench", "path": PATH,
                                                             "id_column": "image_id"}}})
    with pytest.raises(ConfigError, match=r"'id_column' is 'image_id' but split 'validation' has columns image, "):
        build_sources(proto, tmp_path)["aigb"].select("test")


def test_a_chain_given_twice_to_one_split_is_refused(release):
    own = round_protocols(PROTOCOL)[0][1]
    with pytest.raises(ConfigError, match=r"Split 'test' of source 'aigb' gets the chains ai_genbench, ai_genbench"):
        resolve_all(own, build_sources(own, release), None, CHAIN)
    assert set(resolve_all(own, build_sources(own, release), None, Perturb(jpeg=90))["test/r1_next"].table["ops"]) == {
        (CHAIN, Perturb(jpeg=90))}  # a fixed degradation after the chain is fine


def test_a_missing_release_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match=r"AI-GenBench.*simple_dataset_generation\.py"):
        resolve_all(round_protocols(PROTOCOL)[0][1], build_sources(PROTOCOL, tmp_path))


# -- the degradation chain -------------------------------------------------------------------------
class _Draws:
    """A generator whose ``random()`` always returns ``u``: a step is applied iff its probability exceeds u."""

    def __init__(self, u: float):
        self.u, self.real = u, np.random.default_rng(0)

    def random(self):
        return self.u

    def __getattr__(self, name):
        return getattr(self.real, name)


def _photo(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_with_every_draw_missed_only_the_central_crop_to_1080_remains():
    big = _photo(1500, 900)
    out = ai_genbench(big, _Draws(0.999))
    assert out.size == (MAX_SIDE, 900)
    assert np.array_equal(np.asarray(out), np.asarray(big)[:, 210:1290])
    small = _photo(40, 30)
    assert np.array_equal(np.asarray(ai_genbench(small, _Draws(0.999))), np.asarray(small))


def test_with_every_draw_hit_the_image_ends_as_a_grey_square_crop_of_256_to_512():
    out = ai_genbench(_photo(300, 200), _Draws(0.0))
    assert out.mode == "RGB" and out.size[0] == out.size[1] and 256 <= out.size[0] <= 512


def test_draws_are_fixed_per_image_key_and_differ_between_keys():
    img = _photo(64, 48)
    same = [np.asarray(apply_perturb(img, CHAIN, key="aigb:test/5")) for _ in range(2)]
    assert np.array_equal(*same)
    outs = [np.asarray(apply_perturb(img, CHAIN, key=f"aigb:test/{i}")) for i in range(40)]
    assert any(o.shape != same[0].shape or not np.array_equal(o, same[0]) for o in outs)
    other_seed = [np.asarray(apply_perturb(img, Perturb(chain="ai_genbench", seed=1), key=f"aigb:test/{i}"))
                  for i in range(40)]
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(outs, other_seed))


def test_draws_neither_depend_on_nor_change_torchs_global_generator():
    img = _photo(300, 200)
    hit = _Draws(0.0)  # every step, the resized crop's torch draw included
    torch.manual_seed(0)
    first = np.asarray(ai_genbench(img, np.random.default_rng(5)))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    again = np.asarray(ai_genbench(img, np.random.default_rng(5)))
    assert np.array_equal(first, again) and torch.equal(torch.get_rng_state(), state)
    assert ai_genbench(img, hit).size[0] >= 256


def test_step_frequencies_follow_the_published_probabilities():
    img = _photo(100, 60)
    n = 600
    outs = [apply_perturb(img, CHAIN, key=f"k{i}") for i in range(n)]
    cropped = sum(o.size[0] == o.size[1] and 256 <= o.size[0] <= 512 for o in outs)
    untouched = sum(np.array_equal(np.asarray(o), np.asarray(img)) for o in outs)
    # Resized crop with p = 0.25; nothing at all with p = 0.9 * 0.5 * 0.7 * 0.8 * 0.75 * 0.9 = 0.1701.
    assert abs(cropped / n - 0.25) < 0.06
    assert abs(untouched / n - 0.1701) < 0.04


def test_every_jpeg_step_encodes_at_quality_50_or_100():
    img = _photo(64, 48)

    def encoded(quality):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        return np.asarray(Image.open(buf).convert("RGB"))

    from bench.data.perturb_chains import _jpeg

    outs = [np.asarray(_jpeg(img, np.random.default_rng(i))) for i in range(12)]
    assert all(np.array_equal(o, encoded(50)) or np.array_equal(o, encoded(100)) for o in outs)
    assert any(np.array_equal(o, encoded(50)) for o in outs) and any(np.array_equal(o, encoded(100)) for o in outs)


@pytest.mark.parametrize("spec, match", [
    ({"chain": "ai_genbench", "jpeg": 75}, "a chain stands alone"),
    ({"seed": 3}, "seed draws a chain"),
    ({"chain": "genimage"}, "ai_genbench"),
    ({"chain": "ai_genbench", "seed": -1}, "greater than or equal to 0"),
])
def test_a_chain_mixed_with_fixed_degradations_or_unknown_is_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        Perturb(**spec)


@pytest.mark.slow
def test_a_run_trains_eight_rounds_each_from_the_last_and_ranks_the_mean_next_period_auc(release, tmp_path):
    from bench.api import run
    from bench.run.runner import RunnerOptions

    result = run("ai_genbench_windows", "clip_linear", data_root=release, out_dir=tmp_path,
                 overrides={"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32},
                 opts=RunnerOptions(batch_size=32))
    rounds = result["rounds"]
    assert [r["init"] for r in rounds] == ["fresh"] + ["continued"] * 7
    assert {r["selection"]["rule"] for r in rounds} == {"last"}  # AI-GenBench keeps each window's last epoch
    assert [r["selection"]["n_train"] for r in rounds] == [32 * k for k in range(1, 9)]  # 4 kept pairs x 4 generators
    assert [r["next"] for r in rounds] == [ORDER[4 * k:4 * k + 4] for k in range(1, 9)]
    nexts = [result["metrics"][r["tests"]["next"]]["auc"] for r in rounds]
    assert result["groups"]["next"]["auc"] == pytest.approx(np.mean(nexts))
    assert result["protocol"]["primary"] == "auc@next" and result["partial"] is False


def test_the_robustness_figures_read_levels_and_never_plot_a_chain():
    from bench.leaderboard.robustness import _perturb_ops, protocol_variants

    dump = {name: load_protocol(name).model_dump(mode="json") for name in ("universal", "universal_jpeg75",
                                                                            "universal_blur1", "ai_genbench_windows")}
    assert sorted(p["kind"] for p in protocol_variants(dump["universal"], dump)) == ["blur", "jpeg"]
    assert _perturb_ops(dump["universal_jpeg75"]["test"]["progan"]["perturb"]) == {"jpeg": 75.0}
    assert _perturb_ops({"chain": "ai_genbench", "seed": None, "jpeg": None}) == {"chain_ai_genbench": 0.0}
