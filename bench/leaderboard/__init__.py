"""Leaderboards from stored results: submit, aggregate with intervals and rank intervals, pages, figures, site, data.

Layout under the leaderboard directory (``leaderboard/`` in the repository)::

    results/<protocol>/<detector>/<run_id>.json                one run's results.json, stored by submit()
    results/<protocol>/<detector>/<run_id>.predictions.csv.gz  its per-image scores, all test sets
    <protocol>.md                                               generated page, one per protocol name
    figures/<protocol>/v<version>/*.png                        generated pictures linked from the page
    index.json                                                  generated tables as data

Public API: :func:`submit`, :func:`build`, :func:`render`, :func:`check_fresh`, :func:`report`,
:func:`read_runs`, :func:`read_predictions`, :func:`export`. Every statistic (resampling, intervals,
Monte Carlo errors, paired tests, Holm, rank intervals) comes from :mod:`bench.leaderboard.stats`;
tables, figures and the site only format it. Nothing in this package imports torch (a test checks
it), so pages build on any machine with the light dependencies.
"""

from bench.leaderboard.build import build, check_fresh, render
from bench.leaderboard.collect import LeaderboardError
from bench.leaderboard.data import export, read_predictions, read_runs
from bench.leaderboard.report import report
from bench.leaderboard.submit import submit
from bench.leaderboard.tables import HEADER

__all__ = ["HEADER", "LeaderboardError", "build", "check_fresh", "export", "read_predictions", "read_runs",
           "render", "report", "submit"]
