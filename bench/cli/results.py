"""``bench leaderboard``, ``bench report``, ``bench reproduce`` and ``bench cache``: what runs left behind."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tabulate import tabulate

from bench.errors import ConfigError

EXAMPLES = {
    "leaderboard": "bench leaderboard submit runs/synthetic_universal/clip_linear/20261125-120000-s0\n"
                   "  bench leaderboard build --readme README.md --html site\n"
                   "  bench leaderboard export --out results.csv",
    "report": "bench report runs/synthetic_cross_domain/mine/20261125-120000-s0\n"
              "  bench report runs/synthetic_cross_domain/mine/*-s0 runs/synthetic_cross_domain/mine/*-s1\n"
              "  bench report runs/my_protocol/my_detector/RUN --against none --out my_report",
    "reproduce": "bench reproduce leaderboard/results/synthetic_universal/sam/20261130-120000-s0.json\n"
                 "  bench reproduce runs/synthetic_universal/sam/20261130-120000-s0 --tolerance 0.005",
    "cache": "bench cache info\n  bench cache clear --older-than 30\n  BENCH_CACHE=/scratch/bench-cache bench cache info",
}


def add(command) -> None:
    """Register ``bench leaderboard``, ``bench report``, ``bench reproduce`` and ``bench cache``."""
    board = command("leaderboard", EXAMPLES["leaderboard"],
                    "Submit a finished run, or build the leaderboard pages from committed results.")
    board_sub = board.add_subparsers(dest="board_command", required=True, metavar="ACTION")

    def action(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        return board_sub.add_parser(name, help=help_, description=help_, epilog=f"examples:\n  {example}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)

    submit = action("submit", "store a run's results.json and predictions in leaderboard/results/",
                    "bench leaderboard submit runs/synthetic_universal/sam/20261130-120000-s0")
    submit.add_argument("run_dir")
    submit.add_argument("--leaderboard-dir", default="leaderboard")
    build = action("build", "write leaderboard/<protocol>.md, figures and index.json",
                   "bench leaderboard build --readme README.md --html site")
    build.add_argument("--leaderboard-dir", default="leaderboard")
    build.add_argument("--readme", help="also refresh the leaderboard block of this README")
    build.add_argument("--html", metavar="DIR", help="also write a self-contained static site into DIR")
    export = action("export", "all stored metrics as CSV/parquet, one row per run x target x metric",
                    "bench leaderboard export --out results.csv\n  bench leaderboard export --leaderboard-dir runs --out mine.parquet")
    export.add_argument("--leaderboard-dir", default="leaderboard", help="a leaderboard, run directory or runs/ tree")
    export.add_argument("--out", required=True, help="output file ending in .csv, .csv.gz or .parquet")
    board.set_defaults(handler=cmd_leaderboard)

    report = command("report", EXAMPLES["report"], "Place unpublished runs among the leaderboard's rows of their "
                                                   "protocol (markdown + PNG): intervals, rank intervals, paired tests.")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="finished run directories; several seeds of one detector form one row")
    report.add_argument("--against", default="leaderboard", metavar="leaderboard|none|DIR",
                        help="the leaderboard directory to compare with (default: ./leaderboard), or none")
    report.add_argument("--out", help="output directory (default FIRST_RUN_DIR/report)")
    report.set_defaults(handler=cmd_report)

    again = command("reproduce", EXAMPLES["reproduce"],
                    "Re-run a stored result's own run and compare every number within a tolerance.")
    again.add_argument("result", help="a results.json, a run directory, or a file under leaderboard/results/")
    again.add_argument("--tolerance", type=float, default=0.01,
                       help="absolute difference allowed per metric (default 0.01: see README, numbers across machines)")
    again.add_argument("--out", help="where the new run goes (default: a temporary directory)")
    again.add_argument("--data-root", help="root of the datasets (default $BENCH_DATA_ROOT)")
    again.set_defaults(handler=cmd_reproduce)

    cache = command("cache", EXAMPLES["cache"],
                    "Feature cache of frozen-backbone detectors ($BENCH_CACHE): list entries, or delete them.")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    cache_sub.add_parser("info", help="entries per namespace, sizes, total and location")
    cache_sub.add_parser("clear", help="delete every entry, or those no run used for --older-than DAYS").add_argument(
        "--older-than", type=float, metavar="DAYS", help="keep entries used within the last DAYS days")
    cache.set_defaults(handler=cmd_cache)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Submit a run, export the results, or build the pages (and the site with --html); say how long a build took."""
    from bench import leaderboard

    if args.board_command == "submit":
        print(f"submitted {leaderboard.submit(Path(args.run_dir), Path(args.leaderboard_dir))}")
        return
    if args.board_command == "export":
        print(f"wrote {leaderboard.export(Path(args.leaderboard_dir), Path(args.out))}")
        return
    start, html = time.perf_counter(), Path(args.html) if args.html else None
    written = leaderboard.build(Path(args.leaderboard_dir), Path(args.readme) if args.readme else None, html=html)
    if html is None:
        print("\n".join(f"wrote {path}" for path in written))
    site = f"; open {html / 'index.html'}" if html is not None else ""
    print(f"built {len(written)} files in {time.perf_counter() - start:.1f} s{site}")


def cmd_report(args: argparse.Namespace) -> None:
    """Write report.md and its pictures for unpublished runs, placed among the leaderboard's rows."""
    from bench.leaderboard import report

    written = report([Path(d) for d in args.run_dirs], Path(args.out) if args.out else None,
                     None if args.against == "none" else Path(args.against))
    print(f"wrote {written[0]} and {len(written) - 1} pictures")


def cmd_reproduce(args: argparse.Namespace) -> None:
    """Re-run a stored result and print, per metric, the stored value, the new one and the difference."""
    import sys

    from bench.analysis.reproduce import compare, machine_note, reproduce

    if not args.tolerance >= 0:
        raise ConfigError(f"--tolerance {args.tolerance} must be a number >= 0.")
    stored, new = reproduce(Path(args.result), Path(args.out) if args.out else None, args.data_root)
    rows = compare(stored, new, args.tolerance)
    print(tabulate([[r["where"], r["metric"], r["stored"], r["new"], r["diff"], "yes" if r["agree"] else "NO"]
                    for r in rows], headers=["test set", "metric", "stored", "new", "diff", "agree"],
                   floatfmt=".5f"))
    off = [r for r in rows if not r["agree"]]
    print(f"machines: {machine_note(stored, new)}")
    print(f"new run: {new['run_dir']}")
    if off:
        worst = max(off, key=lambda r: abs(r["diff"]) if r["diff"] is not None else float("inf"))
        print(f"{len(off)} of {len(rows)} numbers differ by more than {args.tolerance} (largest: {worst['where']} "
              f"{worst['metric']} {worst['diff']:+.5f}).")
        sys.exit(1)
    print(f"all {len(rows)} numbers agree within {args.tolerance}.")


def cmd_cache(args: argparse.Namespace) -> None:
    """Show the feature cache (entries, sizes, location) or delete entries."""
    from bench.cache.store import ENV, FeatureCache, describe_parts, human_bytes

    cache = FeatureCache()
    if args.cache_command == "clear":
        removed, freed = cache.clear(args.older_than)
        print(f"removed {removed} entries ({human_bytes(freed)}) from {cache.root}")
        return
    rows = cache.info()
    print(f"feature cache: {cache.root} (set by ${ENV})")
    if rows:
        table = [{"namespace": r["namespace"][:12], "features of": describe_parts(r["parts"]), "entries": r["shards"],
                  "rows": r["items"], "dim": r["dim"], "size": human_bytes(r["bytes"]), "last used": r["last_used"]}
                 for r in rows]
        print(tabulate(table, headers="keys", disable_numparse=True))
    print(f"{len(rows)} namespaces, {sum(r['shards'] for r in rows)} entries, "
          f"{sum(r['items'] for r in rows)} feature rows, {human_bytes(sum(r['bytes'] for r in rows))} in total")
