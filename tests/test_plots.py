"""Figures keep one colour per detector across figures and say whether detectors were trained or fresh."""

import pandas as pd

from bench.analysis.plots import gsnr_title, plot_gsnr
from bench.leaderboard.style import detector_colours


def test_a_detector_keeps_its_colour_whatever_else_is_drawn():
    one = detector_colours(["corit", "my_plugin", "sam"])
    two = detector_colours(["my_plugin", "other_plugin", "clip_linear", "corit"])
    assert one["corit"] == two["corit"] == "C3" and one["sam"] == "C2" and two["clip_linear"] == "C0"
    assert one["my_plugin"] == two["my_plugin"]
    many = detector_colours([f"plugin_{i}" for i in range(12)] + ["univfd"])
    assert len(set(many.values())) == len(many)  # distinct within one figure


def test_gsnr_titles_say_trained_or_fresh(tmp_path):
    rows = [{"detector": d, "run": run, "layer": "head", "depth": 0, "n_params": 3, "gsnr_mean": 0.1,
             "gsnr_ratio": 0.2} for d, run in [("sam", "fresh"), ("corit", "fresh")]]
    fresh = pd.DataFrame(rows)
    trained = fresh.assign(run="20261125-191956-s0")
    assert gsnr_title(fresh, "p: GSNR") == "p: GSNR · fresh (untrained) detectors"
    assert gsnr_title(trained) == "trained detectors"
    assert gsnr_title(pd.concat([fresh, trained])).startswith("fresh (dashed) and trained (solid)")
    assert plot_gsnr(fresh, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
