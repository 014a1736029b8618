"""The ``bench`` command line: thin wrappers over the API. Run ``bench COMMAND --help`` for examples.

Each module registers its sub-commands and their handlers: ``run`` (:mod:`bench.cli.run`, with
:mod:`bench.cli.resume` and :mod:`bench.cli.result`), ``ls``,
``show``, ``validate`` (:mod:`bench.cli.catalog`), ``data`` (:mod:`bench.cli.data`), ``diagnose``,
``sweep`` (:mod:`bench.cli.diagnostics`), ``grid`` (:mod:`bench.cli.grid`), ``leaderboard``, ``report``,
``reproduce``, ``cache`` (:mod:`bench.cli.results`). Building the parser imports nothing heavy; handlers import lazily.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from bench.errors import BenchError

#: Set to 1 to print the traceback behind a one-line error (a plugin's own, a library's).
DEBUG_ENV = "BENCH_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    """The whole ``bench`` argument parser."""
    from bench.cli import catalog, data, diagnostics, grid, results, run

    parser = argparse.ArgumentParser(prog="bench", description="Benchmark harness for visual-forgery detectors.",
                                     epilog="A mistake in the input is one line on stderr and exit status 2; set "
                                            "BENCH_DEBUG=1 to also print the traceback behind it.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, examples: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog="examples:\n  " + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    for module in (run, catalog, data, diagnostics, grid, results):
        module.add(command)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``bench`` console script: one line on stderr for a user's mistake, exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and not args.resume and not (args.protocol and args.detector):
        parser.error("bench run needs --protocol and --detector (or --resume RUN_DIR)")
    try:
        args.handler(args)
    except BenchError as err:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exception(err, file=sys.stderr)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: an unfinished run directory stays marked INCOMPLETE (continue it with "
              "`bench run --resume RUN_DIR`; it is never taken for a finished run).", file=sys.stderr)
        sys.exit(130)
