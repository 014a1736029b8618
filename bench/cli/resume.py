"""``bench run --resume RUN_DIR``: continue an interrupted run with the settings it was started with.

The run itself checks that its data, protocol and settings are unchanged and locks the directory
(:mod:`bench.run.resume`); here the command line is checked: only ``--workers``, ``--threads`` and
``--data-root`` may be given beside ``--resume``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench.cli.result import print_result
from bench.errors import ConfigError

#: Flags a resumed run takes from its record, not from the command line (flag, argparse dest).
FIXED_ON_RESUME = [("--protocol", "protocol"), ("--detector", "detector"), ("-o", "override"), ("--limit", "limit"),
                   ("--max-steps", "max_steps"), ("--eval-only", "eval_only"), ("--checkpoint", "checkpoint"),
                   ("--perturb", "perturb"), ("--precision", "precision"), ("--seeds", "seeds"),
                   ("--all-seeds", "all_seeds"), ("--batch-size", "batch_size"), ("--decode", "decode"),
                   ("--no-cache", "no_cache"), ("--check-images", "check_images"),
                   ("--skip-bad-images", "skip_bad_images"), ("--cpu", "cpu"), ("--out", "out"),
                   ("--run-name", "run_name")]


def run_defaults(add: Callable) -> argparse.Namespace:
    """What each ``bench run`` flag is when not given, read from the command's own parser (``add`` registers it)."""
    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers()
    add(lambda name, examples, help_: sub.add_parser(name))
    return parser.parse_args(["run"])


def resume(args: argparse.Namespace, add: Callable) -> None:
    """Continue an interrupted run with everything it was started with; only workers and threads may change."""
    from bench.api import run
    from bench.protocol import Perturb
    from bench.run.results import resumable_run_dir
    from bench.run.runner import RunnerOptions

    defaults = run_defaults(add)
    given = [flag for flag, dest in FIXED_ON_RESUME if getattr(args, dest) != getattr(defaults, dest)]
    if given:
        raise ConfigError(f"--resume continues a run with the settings it was started with; drop {', '.join(given)} "
                          f"(only --workers, --threads and --data-root may be given with it).")
    saved = resumable_run_dir(Path(args.resume))["arguments"]
    recorded = {**saved["runner"], "skip": {}}
    opts = RunnerOptions(**{**recorded, "workers": args.workers, "threads": args.threads or recorded.get("threads")})
    result = run(saved["protocol"], saved["detector"], seed=saved["seed"], overrides=saved["overrides"],
                 data_root=args.data_root or saved["data_root"], opts=opts, limit=saved["limit"],
                 check_images=saved["check_images"], eval_only=saved["eval_only"], checkpoint=saved["checkpoint"],
                 perturb=Perturb(**saved["perturb"]) if saved["perturb"] else None, resume=args.resume)
    print_result(result)
