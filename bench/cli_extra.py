"""More of the ``bench`` parser: ``report``, ``leaderboard export``, ``leaderboard build --html``, and the
protocol schema in ``bench validate --help``. Kept apart so ``bench/cli.py`` stays within its size budget."""

from __future__ import annotations

import argparse

_REPORT = ("bench report runs/synthetic_universal/sam/20261125-120000-s0\n"
           "  bench report runs/my_protocol/my_detector/RUN --out my_report")


def add_commands(sub, board_sub, command) -> None:
    """Add ``report``, ``leaderboard build --html``, ``leaderboard export`` and the schema help to the parser."""
    from bench.cli import EXAMPLES
    from bench.protocol_keys import describe

    validate = sub.choices["validate"]
    validate.epilog = f"{validate.epilog}\n\nprotocol keys (unknown keys are errors):\n{describe()}"

    build = board_sub.choices["build"]
    build.add_argument("--html", metavar="DIR", help="also write a self-contained static site into DIR")
    build.epilog = "examples:\n  bench leaderboard build --readme README.md --html site"
    build.formatter_class = argparse.RawDescriptionHelpFormatter
    export = board_sub.add_parser(
        "export", help="all stored metrics as CSV/parquet, one row per run x target x metric",
        epilog="examples:\n  bench leaderboard export --out results.csv\n"
               "  bench leaderboard export --leaderboard-dir runs --out my_runs.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--leaderboard-dir", default="leaderboard", help="a leaderboard, run directory or runs/ tree")
    export.add_argument("--out", required=True, help="output file ending in .csv, .csv.gz or .parquet")
    EXAMPLES.setdefault("report", _REPORT)
    report = command("report", "Tables and pictures of one run (markdown + PNG), for an unpublished run.")
    report.add_argument("run_dir", help="a finished run directory (partial runs are accepted and marked)")
    report.add_argument("--out", help="output directory (default RUN_DIR/report)")
