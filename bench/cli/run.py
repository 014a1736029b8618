"""``bench run``: train, select on validation, evaluate; ``--resume`` continues an interrupted run."""

from __future__ import annotations

import argparse

from bench.cli.result import print_result
from bench.cli.resume import resume
from bench.errors import ConfigError
from bench.inputs import check_component, check_seeds, check_threads, check_workers

#: Largest --limit, --max-steps and --batch-size (a count beyond it fails deep in the data loader).
COUNT_MAX = 2**31 - 1
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
    seeds.add_argument("--seeds", "--seed", default="0",
                       help="comma-separated training seeds, each once, 0..4294967295 (default 0)")
    seeds.add_argument("--all-seeds", action="store_true", help="use the protocol's seeds")
    run.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                     help="detector setting, e.g. -o lr=1e-4 (repeatable; see `bench show detector NAME`)")
    run.add_argument("--data-root", help="root of the datasets (default $BENCH_DATA_ROOT)")
    run.add_argument("--out", default="runs", help="where run directories go (default runs/)")
    run.add_argument("--run-name", help="name of the run directory inside --out/<protocol>/<detector> (one name, "
                                        "no separator; default <timestamp>-s<seed>)")
    run.add_argument("--batch-size", type=int, default=64, help="global batch size (default 64)")
    run.add_argument("--workers", default="auto",
                     help="data-loader workers per process: auto (this process's cores minus one) or N")
    run.add_argument("--threads", type=int, help="torch intra-op threads, at most this process's cores (default: "
                                                 "torch's; set it on shared machines)")
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
    _check_hardware(args)
    if args.resume:
        return resume(args, add)
    overrides = parse_overrides(args.override)
    for flag, value in (("--limit", args.limit), ("--max-steps", args.max_steps), ("--batch-size", args.batch_size)):
        if value is not None and not 0 < value <= COUNT_MAX:
            raise ConfigError(f"{flag} must be a positive integer (at most {COUNT_MAX}), got {value}.")
    if args.all_seeds:
        seeds = load_protocol(args.protocol).seeds  # the schema checked them (range, repeats)
    else:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            seeds = []
        if not seeds:
            raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1,2.")
        seeds = check_seeds(seeds, f"--seeds {args.seeds}")
    if args.run_name is not None:
        check_component(args.run_name, "--run-name", "choose another --run-name")
        if len(seeds) > 1:
            raise ConfigError("--run-name names one run directory; use it with a single seed.")
    perturb = _perturb(args.perturb) if args.perturb else None
    for seed in seeds:
        result = run(args.protocol, args.detector, seed=seed, overrides=overrides, data_root=args.data_root,
                     out_dir=args.out, opts=_options(args), limit=args.limit, check_images=args.check_images,
                     run_name=args.run_name, eval_only=args.eval_only, checkpoint=args.checkpoint,
                     perturb=perturb)
        print_result(result)


def _check_hardware(args: argparse.Namespace) -> None:
    """--threads and --workers within the cores this process may use, before anything is read."""
    check_threads(args.threads)
    if args.workers != "auto":
        try:
            workers = int(args.workers)
        except ValueError:
            return  # the runner's own message names the accepted forms
        check_workers(workers)


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
                          "(keys: jpeg=1..100, blur=sigma in (0, 1000], downscale=0..1, shorter_side=pixels; "
                          "or chain=ai_genbench with an optional seed=N).") from None
