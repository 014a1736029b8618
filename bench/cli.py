"""The ``bench`` command line: thin wrappers over the API. Run ``bench COMMAND --help`` for examples."""

from __future__ import annotations

import argparse
import sys

from bench.cli_faces import add_parser as add_faces_parser
from bench.errors import BenchError

EXAMPLES = {
    "run": "bench run --protocol synthetic_cross_domain --detector clip_linear\n"
           "  bench run --protocol synthetic_universal --detector univfd --seeds 0,1,2 -o lr=3e-4 --batch-size 32\n"
           "  bench run --protocol my_protocol.yaml --detector my_detector --plugin my_module --limit 50\n"
           "  bench run --protocol universal --detector univfd --eval-only --checkpoint fc_weights.pth\n"
           "  bench run --resume runs/synthetic_universal/sam/20261130-120000-s0",
    "ls": "bench ls detectors\n  bench ls protocols\n  bench ls sources",
    "show": "bench show protocol synthetic_universal\n  bench show detector univfd -o lr=1e-3",
    "validate": "bench validate                       # every shipped protocol\n"
                "  bench validate protocols/my_protocol.yaml",
    "data": "bench data synth --out synth_data --protocol synthetic_universal\n"
            "  bench data index ffpp $BENCH_DATA_ROOT/FaceForensics++\n"
            "  bench data index deepfakebench $BENCH_DATA_ROOT/FaceForensics++ --json FaceForensics++.json\n"
            "  bench data verify --protocol cross_domain --data-root /data\n"
            "  bench data faces celebdf ~/Downloads/Celeb-DF-v2 --out $BENCH_DATA_ROOT/Celeb-DF-v2",
    "diagnose": "bench diagnose gsnr --protocol synthetic_universal --detector sam --detector corit --out gsnr\n"
                "  bench diagnose gsnr --protocol synthetic_universal --run runs/synthetic_universal/sam/RUN --out gsnr",
    "sweep": "bench sweep --protocol synthetic_universal --detector sam --detector corit "
             "--rho 0,0.01,0.02,0.05,0.1,0.2,0.5,1 --out sweep",
    "reproduce": "bench reproduce leaderboard/results/synthetic_universal/sam/20261130-120000-s0.json\n"
                 "  bench reproduce runs/synthetic_universal/sam/20261130-120000-s0 --tolerance 0.005",
    "leaderboard": "bench leaderboard submit runs/synthetic_universal/clip_linear/20261125-120000-s0\n"
                   "  bench leaderboard build --readme README.md",
    "cache": "bench cache info\n  bench cache clear --older-than 30\n  BENCH_CACHE=/scratch/bench-cache bench cache info",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Benchmark harness for visual-forgery detectors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog="examples:\n  " + EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = command("run", "Train a detector on a protocol, select on validation, evaluate, write a run directory.")
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

    ls = command("ls", "List registered detectors, protocols or source types.")
    ls.add_argument("what", choices=["detectors", "protocols", "sources"])
    ls.add_argument("--plugin", action="append", default=[], help="import a module that registers detectors")

    show = command("show", "Show a protocol (resolved) or a detector's resolved settings with defaults.")
    show.add_argument("what", choices=["protocol", "detector"])
    show.add_argument("name")
    show.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--protocol", help="for detectors: apply this protocol's detector_defaults")
    show.add_argument("--data-root", help="for protocols: count images per test set when the data is present")
    show.add_argument("--plugin", action="append", default=[])

    validate = command("validate", "Check protocol files against the strict schema (default: every shipped one).")
    validate.add_argument("files", nargs="*", help="protocol YAML files")

    data = command("data", "Data utilities: synthetic PNG folders, face crops from videos, indexing, verifying.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = data_sub.add_parser("synth", help="write a protocol's synthetic images under DIR/<split>/<subset>/{0_real,1_fake}")
    synth.add_argument("--out", required=True, help="output directory (must not exist)")
    synth.add_argument("--protocol", default="synthetic_universal", help="protocol whose synthetic source to write")
    index = data_sub.add_parser("index", help="index a dataset in its published layout into a manifest CSV")
    index.add_argument("layout", help="ffpp, dfd, deepfakebench, celebdf, dfdc, dfdcp, deeperforensics, uadfv, "
                                      "forensynths, univfd_diffusion, genimage")
    index.add_argument("root", help="the dataset's folder")
    index.add_argument("--out", help="manifest path (default ROOT/index.csv)")
    index.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    index.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="layout option, e.g. compression=c40, splits=DIR, test_list=FILE")
    index.add_argument("--json", action="append", default=[], help="deepfakebench: its dataset JSON file(s)")
    verify = data_sub.add_parser("verify", help="check a protocol's data: counts, unreadable files, duplicates")
    verify.add_argument("--protocol", required=True)
    verify.add_argument("--data-root", help="root of the datasets (default $BENCH_DATA_ROOT)")
    verify.add_argument("--no-images", action="store_true", help="skip decoding images (existence and size only)")
    verify.add_argument("--no-hash", action="store_true", help="skip content hashing (no duplicate search)")
    add_faces_parser(data_sub)

    diagnose = command("diagnose", "Diagnostics: layer-wise gradient signal-to-noise ratio (GSNR) against depth.")
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

    sweep = command("sweep", "Radius sweep: one run per SAM radius; plots AUC against rho and reports the COR.")
    sweep.add_argument("--protocol", required=True)
    sweep.add_argument("--detector", action="append", required=True, help="detector(s) with a `rho` setting")
    sweep.add_argument("--rho", required=True, help="comma-separated radii, e.g. 0,0.01,0.05,0.1")
    sweep.add_argument("--out", default="sweep", help="output directory (re-running resumes finished radii)")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    sweep.add_argument("--data-root")
    sweep.add_argument("--batch-size", type=int, default=64)
    sweep.add_argument("--limit", type=int, help="at most N images per class per split (marks runs partial)")

    again = command("reproduce", "Re-run a stored result's own run and compare every number within a tolerance.")
    again.add_argument("result", help="a results.json, a run directory, or a file under leaderboard/results/")
    again.add_argument("--tolerance", type=float, default=0.01,
                       help="absolute difference allowed per metric (default 0.01; see `bench reproduce --help`)")
    again.add_argument("--out", help="where the new run goes (default: a temporary directory)")
    again.add_argument("--data-root", help="root of the datasets (default $BENCH_DATA_ROOT)")

    board = command("leaderboard", "Submit a finished run, or build leaderboard markdown from committed results.")
    board_sub = board.add_subparsers(dest="board_command", required=True, metavar="ACTION")
    submit = board_sub.add_parser("submit", help="copy a run's results.json into leaderboard/results/")
    submit.add_argument("run_dir")
    submit.add_argument("--leaderboard-dir", default="leaderboard")
    build = board_sub.add_parser("build", help="write leaderboard/<protocol>.md from leaderboard/results/")
    build.add_argument("--leaderboard-dir", default="leaderboard")
    build.add_argument("--readme", help="also refresh the leaderboard block of this README")
    cache = command("cache", "Feature cache of frozen-backbone detectors ($BENCH_CACHE): list entries, or delete them.")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    cache_sub.add_parser("info", help="entries per namespace, sizes, total and location")
    cache_sub.add_parser("clear", help="delete every entry, or those no run used for --older-than DAYS").add_argument(
        "--older-than", type=float, metavar="DAYS", help="keep entries used within the last DAYS days")
    from bench.cli_extra import add_commands

    add_commands(sub, board_sub, command)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``bench`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    from bench import commands

    if args.command == "run" and not args.resume and not (args.protocol and args.detector):
        parser.error("bench run needs --protocol and --detector (or --resume RUN_DIR)")
    try:
        getattr(commands, f"cmd_{args.command}")(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: an unfinished run directory stays marked INCOMPLETE (continue it with "
              "`bench run --resume RUN_DIR`; it is never taken for a finished run).", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
