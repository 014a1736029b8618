"""``bench data``: the embedded benchmark as PNG folders, face crops from videos, indexing, verifying."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.faces import add as add_faces
from bench.errors import BenchError, ConfigError, DataError

EXAMPLES = ("bench data synth --out synth_data --protocol synthetic_universal\n"
            "  bench data index ffpp $BENCH_DATA_ROOT/FaceForensics++\n"
            "  bench data index deepfakebench $BENCH_DATA_ROOT/FaceForensics++ --json FaceForensics++.json\n"
            "  bench data index df40 $BENCH_DATA_ROOT/DF40_train\n"
            "  bench data verify --protocol cross_domain --data-root /data\n"
            "  bench data faces celebdf ~/Downloads/Celeb-DF-v2 --out $BENCH_DATA_ROOT/Celeb-DF-v2")


def add(command) -> None:
    """Register ``bench data synth|index|verify|faces``."""
    data = command("data", EXAMPLES, "Data utilities: synthetic PNG folders, face crops from videos, indexing, verifying.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = data_sub.add_parser("synth", help="write a protocol's synthetic images under DIR/<split>/<subset>/{0_real,1_fake}")
    synth.add_argument("--out", required=True, help="output directory (must not exist)")
    synth.add_argument("--protocol", default="synthetic_universal", help="protocol whose synthetic source to write")
    index = data_sub.add_parser("index", help="index a dataset in its published layout into a manifest CSV")
    index.add_argument("layout", help="ffpp, dfd, deepfakebench, celebdf, dfdc, dfdcp, deeperforensics, uadfv, "
                                      "forensynths, univfd_diffusion, genimage, real_fake_sets, df40, drct2m")
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
    add_faces(data_sub)
    data.set_defaults(handler=cmd_data)


def cmd_data(args: argparse.Namespace) -> None:
    """Dispatch ``bench data synth|index|verify``."""
    {"synth": _data_synth, "index": _data_index, "verify": _data_verify, "faces": _data_faces}[args.data_command](args)


def _data_index(args: argparse.Namespace) -> None:
    from bench.data.indexers import index_dataset
    from bench.plugin.factory import parse_overrides

    options = parse_overrides(args.option)
    if args.json:
        options["json"] = args.json
    notes: list[str] = []
    try:
        path = index_dataset(args.layout, Path(args.root), Path(args.out) if args.out else None,
                             overwrite=args.overwrite, notes=notes, **options)
    except DataError as err:
        from bench.data.faces import unfinished

        stopped = unfinished(Path(args.root))  # then what is missing is the extraction's rest, not a folder
        raise (DataError(f"{stopped}, then index it.") if stopped else err) from None
    print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    _print_faces_report(Path(args.root))


def _print_faces_report(root: Path) -> None:
    """Say what face extraction dropped from the indexed folder (its faces_report.json), if it was extracted here."""
    from bench.data.faces import describe

    for line in describe(root):
        print(f"faces report: {line.strip()}")


def _data_faces(args: argparse.Namespace) -> None:
    """Extract face crops from a dataset's videos; exit non-zero when any video failed."""
    from bench.cli.faces import options_from, settings_from
    from bench.data.faces import extract_faces, format_summary

    summary = extract_faces(args.layout, Path(args.video_root), Path(args.out) if args.out else None,
                            settings_from(args), workers=args.workers, options=options_from(args),
                            progress=not args.no_progress)
    print(format_summary(summary))
    failed = summary.totals["failed"]
    if failed:
        raise BenchError(f"{failed} of {summary.totals['videos']} videos failed (unreadable or corrupt; the others were "
                         f"extracted); {summary.report} names each with the reason. Fix or re-download them and run "
                         "the same command again: only those are redone.")


def _data_verify(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from bench.api import data_root_from
    from bench.data.verify import verify_protocol
    from bench.data.verify_report import failure_message, format_report

    bar = tqdm(desc="verify", unit="file", leave=False)

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    report = verify_protocol(args.protocol, data_root_from(args.data_root), check_images=not args.no_images,
                             progress=progress, hash_files=not args.no_hash)
    bar.close()
    print(format_report(report))
    message = failure_message(report)
    if message:
        raise BenchError(message)


def _data_synth(args: argparse.Namespace) -> None:
    """Write the synthetic source of a protocol to PNG folders."""
    from bench.data.sources.synthetic import SyntheticSource, write_folder
    from bench.data.splits import build_sources
    from bench.protocol import load_protocol

    proto = load_protocol(args.protocol)
    out = Path(args.out)
    if out.exists():
        raise BenchError(f"Output directory {out} already exists; choose a new --out (nothing is overwritten).")
    synthetic = {n: s for n, s in build_sources(proto, None).items() if isinstance(s, SyntheticSource)}
    if not synthetic:
        raise ConfigError(f"Protocol {proto.name!r} has no synthetic source; pick an embedded protocol.")
    for source in synthetic.values():
        count = write_folder(source, out, subsets_by_split=_subsets_by_split(proto, source.name))
        print(f"wrote {count} images of source {source.name!r} to {out}")


def _subsets_by_split(proto, source_name: str) -> dict[str, list[str]]:
    """The subsets of each split that a protocol reads from one source."""
    wanted: dict[str, list[str]] = {}
    for _, part in proto.splits():
        if part.source == source_name:
            for subset in part.subsets or []:
                if subset not in wanted.setdefault(part.split, []):
                    wanted[part.split].append(subset)
    return wanted
