"""A run: the runner and its training loop, loaders, pre-run checks, checkpoints and the run directory.

:func:`bench.api.run` drives it. :mod:`bench.run.results` is also the format the leaderboard reads
(it and :mod:`bench.run.provenance` stay torch-free).
"""
