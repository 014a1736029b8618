"""``bench run``: train, select on validation, evaluate; ``--resume`` continues an interrupted run."""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from bench.errors import ConfigError

EXAMPLES = ("bench run --protocol synthetic_cross_domain --detector clip_linear\n"
            "  bench run --protocol synthetic_universal --detector univfd --seeds 0,1,2 -o lr=3e-4 --batch-size 32\n"
            "  bench run --protocol my_protocol.yaml --detector my_detector --plugin my_module --limit 50\n"
            "  bench run --protocol universal --detector univfd --eval-only --checkpoint fc_weights.pth\n"
            "  bench run --resume runs/synthetic_universal/sam/20261130-120000-s0")


def add(command) -> None:
    """Register ``bench run``."""
    run = command("run", EXAMPLES, "Train a detector on a protocol, select on validation, evaluate, write a run directory.")
    run.add_argument("--protocol", help="registered protocol name or a .yaml path (required unless --resume)")
    run.add_argument("--detector", help="registered detector or preset name (required unless --resume)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", "--seed", default="0", help="comma-separated training seeds (default 0)")
    seeds.add_argument("--all-seeds", action="store_true", help="use the protocol's seeds")
    run.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                     help="detector setting, e.g. -o lr=1e-4 (repeatable; see `bench show detector NAME`)")
    run.add_argument("--data-root", help="root of the datasets (default $BENCH_DATA_ROOT)")
    run.add_argument("--out", default="runs", help="where run directories go (default runs/)")
    run.add_argument("--run-name", help="name of the run directory (default <timestamp>-s<seed>)")
    run.add_argument("--batch-size", type=int, default=64, help="global batch size (default 64)")
    run.add_argument("--workers", default="auto",
                     help="data-loader workers per process: auto (this process's cores minus one) or N")
    run.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's; set it on shared machines)")
    run.add_argument("--precision", choices=["no", "bf16", "fp16"],
                     help="mixed precision (default: the launcher's --mixed_precision, else no)")
    run.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    run.add_argument("--check-images", action="store_true",
                     help="decode every image before the run (default: cheap checks; bad images found later "
                          "stop the run or, with --skip-bad-images, are skipped and recorded)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run directory from its last epoch")
    run.add_argument("--decode", choices=["cpu", "gpu"], default="cpu",
                     help="where JPEG files are decoded: cpu (loader workers) or gpu (nvjpeg, CUDA only)")
    run.add_argument("--no-cache", action="store_true",
                     help="compute frozen features afresh instead of reusing them from $BENCH_CACHE")
    run.add_argument("--max-steps", type=int, help="stop training after N steps (marks the run partial)")
    run.add_argument("--limit", type=int, help="at most N images per class per split (marks the run partial)")
    run.add_argument("--skip-bad-images", action="store_true",
                     help="leave out undecodable images instead of stopping (recorded in the results)")
    run.add_argument("--eval-only", action="store_true", help="no training: evaluate the --checkpoint weights")
    run.add_argument("--checkpoint", help="run directory or weights file (.safetensors/.pth; UnivFD's fc_weights.pth)")
    run.add_argument("--perturb", help="degrade every test set, e.g. jpeg=75 or blur=1.0,downscale=0.5 (marks the run partial)")
    run.add_argument("--plugin", action="append", default=[], help="import a module that registers detectors")

    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> None:
    """Run one detector on one protocol for each requested seed and print the metrics."""
    from bench.api import run
    from bench.plugin.factory import parse_overrides
    from bench.plugin.registry import import_plugins
    from bench.protocol import load_protocol

    import_plugins(args.plugin)
    if args.resume:
        return _resume(args)
    overrides = parse_overrides(args.override)
    for flag, value in (("--limit", args.limit), ("--max-steps", args.max_steps), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be a positive integer, got {value}.")
    if args.all_seeds:
        seeds = load_protocol(args.protocol).seeds
    else:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            seeds = []
        if not seeds:
            raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1,2.")
    if args.run_name and len(seeds) > 1:
        raise ConfigError("--run-name names one run directory; use it with a single seed.")
    perturb = _perturb(args.perturb) if args.perturb else None
    for seed in seeds:
        result = run(args.protocol, args.detector, seed=seed, overrides=overrides, data_root=args.data_root,
                     out_dir=args.out, opts=_options(args), limit=args.limit, check_images=args.check_images,
                     run_name=args.run_name, eval_only=args.eval_only, checkpoint=args.checkpoint,
                     perturb=perturb)
        print_result(result)


def _options(args: argparse.Namespace):
    from bench.run.runner import RunnerOptions

    return RunnerOptions(batch_size=args.batch_size, workers=args.workers, precision=args.precision, cpu=args.cpu,
                         max_steps=args.max_steps, threads=args.threads, cache=not args.no_cache, decode=args.decode,
                         skip_bad_images=args.skip_bad_images)


def _perturb(text: str):
    from pydantic import ValidationError

    from bench.plugin.factory import parse_overrides
    from bench.protocol import Perturb

    try:
        return Perturb(**parse_overrides(text.split(",")))
    except ValidationError as err:
        raise ConfigError(f"--perturb {text!r} is invalid: {err.errors()[0]['msg']} "
                          "(keys: jpeg=1..100, blur=sigma>0, downscale=0..1).") from None


#: Flags a resumed run takes from its record, not from the command line (flag, argparse dest).
FIXED_ON_RESUME = [("--protocol", "protocol"), ("--detector", "detector"), ("-o", "override"), ("--limit", "limit"),
                   ("--max-steps", "max_steps"), ("--eval-only", "eval_only"), ("--checkpoint", "checkpoint"),
                   ("--perturb", "perturb"), ("--precision", "precision"), ("--seeds", "seeds"),
                   ("--all-seeds", "all_seeds"), ("--batch-size", "batch_size"), ("--decode", "decode"),
                   ("--no-cache", "no_cache"), ("--check-images", "check_images"),
                   ("--skip-bad-images", "skip_bad_images"), ("--cpu", "cpu"), ("--out", "out"),
                   ("--run-name", "run_name")]


def _run_defaults() -> argparse.Namespace:
    """What each ``bench run`` flag is when not given, read from this command's own parser."""
    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers()
    add(lambda name, examples, help_: sub.add_parser(name))
    return parser.parse_args(["run"])


def _resume(args: argparse.Namespace) -> None:
    """Continue an interrupted run with everything it was started with; only workers and threads may change."""
    from bench.api import run
    from bench.protocol import Perturb
    from bench.run.results import resumable_run_dir
    from bench.run.runner import RunnerOptions

    defaults = _run_defaults()
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


def print_result(result: dict) -> None:
    """Print AUC/AP (and the protocol's other metrics) per test set and group."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    metrics = [m for m in result["protocol"]["metrics"]]
    rows = [[name, *(m.get(k) for k in metrics), m["n_real"], m["n_fake"]] for name, m in result["metrics"].items()]
    rows += [[f"[{name}]", *(m.get(k) for k in metrics), "", ""] for name, m in result["groups"].items()]
    print(f"\n{result['protocol']['name']} v{result['protocol']['version']} · {result['detector']['name']} · "
          f"seed {result['seed']} · selected {result['selection'].get('rule')} · "
          f"{result['timing']['total_seconds']:.1f} s{' · PARTIAL' if result['partial'] else ''}")
    print(tabulate(rows, headers=["test set", *metrics, "n_real", "n_fake"], floatfmt=".4f"))
    print(f"run directory: {result['run_dir']}")
