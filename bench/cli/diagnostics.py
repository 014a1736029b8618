"""``bench diagnose gsnr`` and ``bench sweep``: CoRIT's diagnostics, for any detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from bench.cli.grid_flags import add_executor_flags, executor_from_args
from bench.errors import ConfigError

EXAMPLES = {
    "diagnose": "bench diagnose gsnr --protocol synthetic_universal --detector sam --detector corit --out gsnr\n"
                "  bench diagnose gsnr --protocol synthetic_universal --run runs/synthetic_universal/sam/RUN --out gsnr",
    "sweep": "bench sweep --protocol synthetic_universal --detector sam --detector corit "
             "--rho 0,0.01,0.02,0.05,0.1,0.2,0.5,1 --seeds 0,1,2 --out sweep\n"
             "  bench sweep --protocol synthetic_universal --detector corit --rho 0,0.05,0.5 --out sweep "
             "--executor slurm --partition gpu --time-limit 120 --gpus-per-cell 1",
}


def add(command) -> None:
    """Register ``bench diagnose`` and ``bench sweep``."""
    diagnose = command("diagnose", EXAMPLES["diagnose"], "Diagnostics: layer-wise gradient signal-to-noise ratio (GSNR) against depth.")
    diag_sub = diagnose.add_subparsers(dest="diagnose_command", required=True, metavar="ACTION")
    gsnr = diag_sub.add_parser("gsnr", help="per-sample gradients on train probes → GSNR per layer (CSV + PNG)")
    gsnr.add_argument("--protocol", required=True)
    gsnr.add_argument("--detector", action="append", default=[], help="fresh detector(s) to probe (repeatable)")
    gsnr.add_argument("--run", action="append", default=[], help="trained run directory(ies) to probe (repeatable)")
    gsnr.add_argument("-n", type=int, default=128, help="probe samples from the train split (default 128)")
    gsnr.add_argument("--out", default="gsnr", help="output directory for gsnr.csv and gsnr.png")
    gsnr.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    gsnr.add_argument("--data-root")
    gsnr.add_argument("--seed", type=int, default=0)

    sweep = command("sweep", EXAMPLES["sweep"], "Radius sweep: a grid of one run per SAM radius (local or SLURM); "
                    "plots AUC against rho and reports the COR.")
    sweep.add_argument("--protocol", required=True)
    sweep.add_argument("--detector", action="append", required=True, help="detector(s) with a `rho` setting")
    sweep.add_argument("--rho", required=True, help="comma-separated radii, e.g. 0,0.01,0.05,0.1")
    sweep.add_argument("--out", default="sweep", help="the sweep's grid directory (re-running reuses finished radii "
                       "and resumes interrupted ones)")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--seeds", help="comma-separated seeds, one run per radius and seed (overrides --seed)")
    sweep.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    sweep.add_argument("--data-root")
    sweep.add_argument("--batch-size", type=int, default=64)
    sweep.add_argument("--limit", type=int, help="at most N images per class per split (marks runs partial)")
    sweep.add_argument("--threads", type=int, help="torch intra-op threads of each run")
    add_executor_flags(sweep)
    diagnose.set_defaults(handler=cmd_diagnose)
    sweep.set_defaults(handler=cmd_sweep)


def cmd_diagnose(args: argparse.Namespace) -> None:
    """Layer-wise GSNR of fresh detectors and/or trained runs."""
    from bench.analysis.diagnose import gsnr
    from bench.plugin.factory import parse_overrides

    if not args.detector and not args.run:
        raise ConfigError("bench diagnose gsnr needs --detector NAME or --run RUN_DIR (either may repeat).")
    table = gsnr(args.protocol, args.detector or None, [Path(r) for r in args.run] or None, n=args.n,
                 out_dir=Path(args.out), data_root=args.data_root, overrides=parse_overrides(args.override),
                 seed=args.seed)
    print(tabulate(table, headers="keys", showindex=False, floatfmt=".4g"))
    print(f"wrote {Path(args.out) / 'gsnr.csv'} and {Path(args.out) / 'gsnr.png'}")


def cmd_sweep(args: argparse.Namespace) -> None:
    """One run per radius; CSV, plot and the critical optimization radius per detector."""
    from bench.analysis.sweep import cor_summary, format_cor_table, sweep
    from bench.plugin.factory import parse_overrides
    from bench.run.runner import RunnerOptions

    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1,2.") from None
    table = sweep(args.protocol, args.detector, args.rho, Path(args.out), seed=args.seed, data_root=args.data_root,
                  overrides=parse_overrides(args.override),
                  opts=RunnerOptions(batch_size=args.batch_size, threads=args.threads), limit=args.limit,
                  executor=executor_from_args(args), seeds=seeds)
    print(format_cor_table(cor_summary(table)))
    print(f"wrote {Path(args.out) / 'sweep.csv'}, points.csv, sweep.png and cor.json")
