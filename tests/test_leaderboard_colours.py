"""Detector colours: fixed for built-ins and presets, a hash of the name otherwise, the same in every figure."""

from __future__ import annotations

import subprocess
import sys

from bench.leaderboard.style import detector_colours

BUILT_INS = ["clip_linear", "univfd", "sam", "corit", "effort", "gend", "rine", "npr", "safe", "cnnspot", "sbi",
             "finetune", "xception", "effnet_b4"]


def test_built_ins_and_presets_have_distinct_fixed_colours():
    colours = detector_colours(BUILT_INS)
    assert len(set(colours.values())) == len(BUILT_INS)
    assert detector_colours(reversed(BUILT_INS)) == colours
    plugins = detector_colours(f"plugin_{i}" for i in range(200))
    assert set(plugins.values()).isdisjoint(colours.values())  # a plugin never looks like a built-in


def test_a_name_keeps_its_colour_whatever_else_a_figure_shows():
    names = [f"my_detector_{i}" for i in range(40)]
    alone = {name: detector_colours([name])[name] for name in names}
    together = detector_colours(names + BUILT_INS)
    assert {n: together[n] for n in names} == alone  # no shifting on collisions within a figure
    assert len(set(alone.values())) > 25  # spread over a palette larger than tab20


def test_many_names_terminate():
    code = ("from bench.leaderboard.style import detector_colours\n"
            "print(len(detector_colours([f'plugin_{i}' for i in range(60)] + ['univfd'])))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "61", done.stderr
