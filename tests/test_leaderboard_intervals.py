"""Pages built from stored predictions: intervals on every cell, tie marks, unranked runs, provenance."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from board import TINY, board, commit, make_result, predictions, write_run_dir

from bench.leaderboard import build, check_fresh, render


def table(lb: Path) -> dict:
    return json.loads(render(lb)[lb / "index.json"])["protocols"][0]


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    """best and twin give the same scores (twin: another name, so another row); weak is far below."""
    lb = board(tmp_path_factory.mktemp("board") / "leaderboard", {"best": 1.5, "weak": 0.2})
    for seed in (0, 1, 2):
        frame = predictions(1.5, seed, noise_seed=seed)  # best's own scores (its noise seeds are 0, 1, 2)
        commit(lb, make_result("twin", seed, frame=frame), frame)
    return lb


@pytest.fixture(scope="module")
def built(lb):
    """The rendered files of ``lb``, computed once for the module (the bootstrap takes a second)."""
    return render(lb)


def test_every_cell_has_an_interval_around_its_mean(lb, built):
    t = json.loads(built[lb / "index.json"])["protocols"][0]
    cells = [c for e in t["entries"] for section in ("metrics", "groups") for target in e[section].values()
             for c in target.values() if c is not None]
    # rows x (tests + groups) x (auc, ap, eer, acc, real_acc, fake_acc, oracle_acc, ece, tpr_at_fpr1, tpr_at_fpr5)
    assert len(cells) == 3 * (3 + 2) * 10
    for c in cells:
        assert c["lo"] <= c["mean"] + 0.02 and c["mean"] - 0.02 <= c["hi"] and c["lo"] <= c["hi"], c
        assert c["mc_error"] is not None and c["mc_error"] < 0.05
    unrecorded = {k for e in t["entries"] for section in ("metrics", "groups") for target in e[section].values()
                  for k, c in target.items() if c is None}
    assert unrecorded == {"acc_val_thr"}  # schema-1 results have no validation threshold: never a made-up number
    derived = {k for e in t["entries"] for target in e["groups"].values() for k, c in target.items()
               if c is not None and c["from"] == "predictions"}
    assert derived == {"oracle_acc", "ece", "tpr_at_fpr1", "tpr_at_fpr5"}  # from the stored scores alone
    page = built[lb / "tiny.md"]
    assert re.search(r"\| 1 +\| best +\| 0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", page)
    assert "†" not in page and not re.search(r"\bnan\b", page, re.IGNORECASE)
    assert "10,000 bootstrap resamples" in page and "Holm-adjusted" in page and "α = 0.05" in page


def test_rank_intervals_and_the_rows_that_could_be_first(lb, built):
    t = json.loads(built[lb / "index.json"])["protocols"][0]
    rows = {e["detector"]: e for e in t["entries"]}
    assert rows["best"]["rank"] == rows["twin"]["rank"] == 1  # equal means share the rank
    assert rows["best"]["could_be_first"] is True and rows["twin"]["could_be_first"] is True
    assert rows["twin"]["p_vs_top_holm"] == 1.0 and rows["twin"]["rank_interval"] == [1, 2]
    assert rows["weak"]["could_be_first"] is False and rows["weak"]["p_vs_top_holm"] < 0.05
    assert rows["weak"]["rank_interval"] == [3, 3]
    assert len(t["pairs"]) == 3 and {p["a"] for p in t["pairs"]} <= {"best", "twin"}
    assert re.search(r"\| 3 +\| weak +\| [^|]+\| +3 \| +no \|", built[lb / "tiny.md"])


def test_numbers_are_deterministic(lb, built):
    assert render(lb) == built


def test_runs_not_made_under_the_protocol_are_listed_apart(tmp_path):
    lb = board(tmp_path / "lb", {"a": 1.0}, seeds=(0,))
    frame = predictions(3.0, 0)
    commit(lb, make_result("b", 0, frame=frame, runner={"eval_only": True, "checkpoint": str(tmp_path / "x" / "fc_weights.pth")}),
           frame)
    schema2 = make_result("c", 0, frame=predictions(2.0, 1), schema_version=2,
                          origin={"kind": "protocol", "rankable": False,
                                  "reasons": ["3 images skipped with --skip-bad-images"]})
    commit(lb, schema2)
    t = table(lb)
    assert [e["detector"] for e in t["entries"]] == ["a"]
    unranked = {e["detector"]: e for e in t["unranked"]}
    assert unranked["b"]["origin"]["reasons"] == ["eval-only: weights from fc_weights.pth"]
    assert unranked["c"]["origin"]["reasons"] == ["3 images skipped with --skip-bad-images"]
    page = render(lb)[lb / "tiny.md"]
    assert "### Not ranked" in page and "eval-only: weights from fc_weights.pth" in page and str(tmp_path / "x") not in page


def test_rows_without_predictions_are_footnoted_and_not_tied(tmp_path):
    lb = board(tmp_path / "lb", {"a": 1.0, "b": 0.9}, seeds=(0, 1))
    commit(lb, make_result("old", 0, 0.5))
    rows = {e["detector"]: e for e in table(lb)["entries"]}
    assert rows["old"]["intervals"] == "none" and rows["old"]["could_be_first"] is None
    assert rows["b"]["intervals"] == "bootstrap"
    assert "old †" in render(lb)[lb / "tiny.md"]


def test_provenance_says_who_provides_it_how_it_was_set_and_how_to_rerun(tmp_path):
    lb = tmp_path / "lb"
    frame = predictions(1.0, 0)
    result = make_result("tiny_cnn", 0, frame=frame, command="bench run --protocol tiny --detector tiny_cnn "
                         "--seeds 0 -o lr=0.0003 --override epochs=2 --plugin my_detectors --data-root /mnt/data")
    result["detector"]["distribution"] = "my-detectors 0.2.0"
    commit(lb, result, frame)
    schema2 = make_result("sam", 0, frame=frame, schema_version=2)
    schema2["detector"]["overrides"] = {"rho": 0.1, "adaptive": True}
    commit(lb, schema2, frame)
    rows = {e["detector"]: e for e in table(lb)["entries"]}
    assert rows["tiny_cnn"]["overrides_text"] == "lr = 0.0003, epochs = 2"
    assert rows["sam"]["overrides_text"] == "rho = 0.1, adaptive = true"
    assert rows["tiny_cnn"]["command"] == ("pip install 'my-detectors==0.2.0' && bench run --protocol tiny "
                                           "--detector tiny_cnn -o lr=0.0003 --override epochs=2 --plugin "
                                           "my_detectors --seeds 0")
    assert "my-detectors 0.2.0" in render(lb)[lb / "tiny.md"]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_build_draws_the_pictures_the_page_links(tmp_path):
    definition = TINY.model_dump(mode="json")
    lb = tmp_path / "lb"
    for seed in (0, 1):
        frame = predictions(1.0 + seed, seed)
        result = make_result("a", seed, frame=frame)
        result["protocol"]["definition"] = definition
        commit(lb, result, frame)
    written = build(lb)
    pictures = [p for p in written if p.suffix == ".png"]
    assert [p.name for p in pictures] == ["heatmap.png", "roc.png"]
    page = (lb / "tiny.md").read_text()
    for p in pictures:
        assert f"(figures/tiny/v1/{p.name})" in page and min(_png_size(p)) > 100
    assert check_fresh(lb) == []
    bad = json.loads(json.dumps(definition))
    bad["version"] = 9
    result = make_result("b", 0, frame=predictions(1.0, 0))
    result["protocol"]["definition"] = bad
    commit(lb, result)
    with pytest.raises(Exception, match="stores a protocol definition whose hash"):
        render(lb)


def test_a_non_finite_stored_metric_is_refused(tmp_path):
    result = make_result("a", 0)
    result["metrics"]["peaks_p4"]["ap"] = float("nan")
    path = commit(tmp_path / "lb", result)
    with pytest.raises(Exception, match="non-finite ap for peaks_p4") as info:
        render(tmp_path / "lb")
    assert str(path) in str(info.value)


def test_robustness_pictures_from_degraded_test_sets_and_variant_protocols(tmp_path):
    from bench.leaderboard.robustness import within_protocol
    from bench.protocol import Protocol, load_protocol

    panels = within_protocol(load_protocol("synthetic_cross_domain").model_dump(mode="json"))
    assert [(p["kind"], [lvl for lvl, _ in p["points"]]) for p in panels] == [
        ("jpeg", [75.0, 50.0]), ("resize", [0.5]), ("blur", [1.0])]
    assert panels[0]["clean"] == "blend_ellipse" and panels[0]["combined"] == ["blend_ellipse_resize_half_jpeg60"]

    clean = TINY.model_dump(mode="json")
    variant = json.loads(json.dumps(clean))
    variant["name"] = "tiny_jpeg75"
    for spec in variant["test"].values():
        spec["perturb"] = {"jpeg": 75, "blur": None, "downscale": None}
    lb = tmp_path / "lb"
    for definition in (clean, variant):
        sha = Protocol.model_validate(definition).sha256()
        for detector, separation in (("a", 1.5), ("b", 0.5)):
            frame = predictions(separation, 0)
            result = make_result(detector, 0, frame=frame)
            result["protocol"].update(name=definition["name"], sha256=sha, definition=definition)
            commit(lb, result, frame)
    build(lb)
    page = (lb / "tiny.md").read_text()
    assert "![robustness](figures/tiny/v1/robustness.png)" in page and "JPEG quality" in page
    assert (lb / "figures/tiny/v1/robustness.png").is_file()
    assert "robustness" not in (lb / "tiny_jpeg75.md").read_text()  # drawn on the clean protocol's page


def _legend(lb: Path) -> str:
    page = render(lb)[lb / "tiny.md"]
    return page[page.index("Cells:"):page.index("###")]


def test_the_legend_claims_shared_draws_and_fixed_seeds_only_when_they_happened(tmp_path):
    definition = TINY.model_dump(mode="json")
    shared = tmp_path / "shared"  # one seed, with the protocol definition: synthetic images drawn together
    for detector, separation in (("a", 1.5), ("b", 0.5)):
        frame = predictions(separation, 0)
        result = make_result(detector, 0, frame=frame)
        result["protocol"]["definition"] = definition
        commit(shared, result, frame)
    text = _legend(shared)
    assert "from 10,000 bootstrap resamples" in text and "seeds are fixed" not in text
    assert "on the synthetic source the k-th real and the k-th fake of a split start from the same crop" in text
    assert "one seed, so the interval covers the test images only" in text
    assert "a resample draws 40 real and 40 fake units" in text
    assert table(shared)["bootstrap"]["shared_real_pools"] is True

    apart = board(tmp_path / "apart", {"a": 1.0, "b": 0.5}, seeds=(0, 1))  # no definition: nothing is shared
    text = _legend(apart)
    assert "The seeds are fixed, not drawn" in text and "every test set draws its own images" in text
    assert "synthetic" not in text and "seed range" in text
    b = table(apart)["bootstrap"]
    assert b["shared_real_pools"] is False and b["shared_fake_pools"] is False and b["shared"] == []
    assert b["seeds"] == "fixed" and b["resamples"] == 10_000

    old = tmp_path / "old"  # no stored predictions: no interval, no rank test, nothing claimed about them
    for seed in (0, 1):
        commit(old, make_result("a", seed, 1.0))
    text = _legend(old)
    assert "[lo, hi]" not in text and "rank interval" not in text and "† the row's runs have no stored predictions" in text


def test_a_report_says_its_interval_covers_test_images_only(tmp_path):
    from bench.leaderboard import report

    frame = predictions(1.0, 0)
    run_dir = write_run_dir(tmp_path / "runs", make_result("sam", 0, frame=frame), frame)
    written = report(run_dir, tmp_path / "out", against=None)
    text = written[0].read_text()
    assert "one seed, so the interval covers the test images only" in text
    assert "k-th real and the k-th fake of a split" in text  # its config.yaml gives the protocol definition
    assert "seeds are fixed" not in text and "Compared with nothing (`--against none`)." in text
