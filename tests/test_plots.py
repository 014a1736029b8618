"""Figures keep one colour per detector across figures and say whether detectors were trained or fresh."""

import pandas as pd
import pytest

from bench.analysis.plots import gsnr_title, plot_gsnr
from bench.leaderboard.style import detector_colours


def test_a_detector_keeps_its_colour_whatever_else_is_drawn():
    one = detector_colours(["corit", "my_plugin", "sam"])
    two = detector_colours(["my_plugin", "other_plugin", "clip_linear", "corit"])
    assert one["corit"] == two["corit"] == "C3" and one["sam"] == "C2" and two["clip_linear"] == "C0"
    assert one["my_plugin"] == two["my_plugin"]
    many = detector_colours([f"plugin_{i}" for i in range(12)] + ["univfd"])
    assert len(set(many.values())) == len(many)  # distinct within one figure


def test_gsnr_titles_say_trained_or_fresh_and_which_seeds(tmp_path):
    rows = [{"detector": d, "run": run, "seed": 0, "layer": "head", "depth": 0, "n_params": 3, "gsnr_mean": 0.1,
             "gsnr_ratio": 0.2} for d, run in [("sam", "fresh"), ("corit", "fresh")]]
    fresh = pd.DataFrame(rows)
    trained = fresh.assign(run="20261125-191956-s2", seed=2)
    assert gsnr_title(fresh, "p: GSNR") == "p: GSNR · fresh (untrained) detectors, seed 0 (2 runs)"
    assert gsnr_title(trained) == "trained detectors, seed 2 (2 runs)"
    assert gsnr_title(pd.concat([fresh, trained])).startswith("fresh (dashed) and trained (solid) detectors, seeds 0, 2")
    assert gsnr_title(trained.drop(columns="seed")) == "trained detectors, seed 2 (2 runs)"  # older CSVs: by run name
    assert plot_gsnr(fresh, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_the_sweep_figure_has_a_full_axis_and_says_which_seeds(tmp_path):
    from matplotlib.figure import Figure

    from bench.analysis.plots import plot_sweep
    from bench.analysis.sweep import points

    runs = pd.DataFrame([{"detector": d, "rho": rho, "seed": s, "val_auc": 0.9 - rho / 4 + s / 100,
                          "primary": 0.6 + rho / 10 + s / 50, "run_dir": f"runs/p/{d}/rho{rho}-s{s}"}
                         for d in ("sam", "corit") for rho in (0.0, 0.1, 1.0) for s in (0, 1, 2)])
    drawn = points(runs)  # no run directories here: no interval, said so in the title
    assert drawn["seeds"].eq(3).all() and drawn["lo"].isna().all()
    one = drawn.query("detector == 'sam' and rho == 0.1").iloc[0]
    assert (one["seed_min"], one["primary"], one["seed_max"]) == pytest.approx((0.61, 0.63, 0.65))
    captured = {}
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        captured["figure"] = self
        return original(self, *args, **kwargs)

    Figure.savefig = keep
    try:
        plot_sweep(drawn, tmp_path / "s.png", "auc@unseen", title="p: sweep, seeds 0, 1, 2")
    finally:
        Figure.savefig = original
    fig = captured["figure"]
    assert all(ax.get_ylim() == (0.0, 1.0) for ax in fig.axes)
    title = fig._suptitle.get_text()
    assert "seeds 0, 1, 2" in title and "mean over 3 seeds per point" in title and "predictions not kept" in title
