"""What each ``bench`` sub-command does; ``bench.cli`` only parses arguments."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

import yaml
from tabulate import tabulate

from bench.errors import BenchError, ConfigError
from bench.registry import DETECTORS, SOURCES, import_plugins


def cmd_run(args: argparse.Namespace) -> None:
    """Run one detector on one protocol for each requested seed and print the metrics."""
    from bench.api import run
    from bench.factory import parse_overrides
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
            raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1,2.") from None
    if args.run_name and len(seeds) > 1:
        raise ConfigError("--run-name names one run directory; use it with a single seed.")
    perturb = _perturb(args.perturb) if args.perturb else None
    for seed in seeds:
        result = run(args.protocol, args.detector, seed=seed, overrides=overrides, data_root=args.data_root,
                     out_dir=args.out, opts=_options(args), limit=args.limit, check_images=args.check_images,
                     run_name=args.run_name, eval_only=args.eval_only, checkpoint=args.checkpoint,
                     perturb=perturb)
        print_result(result)


def _options(args: argparse.Namespace, batch_size: int | None = None, max_steps: int | None = None,
             skip_bad_images: bool | None = None):
    from bench.runner import RunnerOptions

    return RunnerOptions(batch_size=batch_size or args.batch_size, workers=args.workers, precision=args.precision,
                         cpu=args.cpu, max_steps=max_steps if max_steps is not None else args.max_steps,
                         threads=args.threads, cache=not args.no_cache, decode=args.decode,
                         skip_bad_images=args.skip_bad_images if skip_bad_images is None else skip_bad_images)


def _perturb(text: str):
    from pydantic import ValidationError

    from bench.factory import parse_overrides
    from bench.protocol import Perturb

    try:
        return Perturb(**parse_overrides(text.split(",")))
    except ValidationError as err:
        raise ConfigError(f"--perturb {text!r} is invalid: {err.errors()[0]['msg']} "
                          "(keys: jpeg=1..100, blur=sigma>0, downscale=0..1).") from None


def _resume(args: argparse.Namespace) -> None:
    """Continue an interrupted run with the arguments it was started with (hardware flags may change)."""
    from bench.api import run
    from bench.protocol import Perturb
    from bench.results import resumable_run_dir

    saved = resumable_run_dir(Path(args.resume))["arguments"]
    result = run(saved["protocol"], saved["detector"], seed=saved["seed"], overrides=saved["overrides"],
                 data_root=args.data_root or saved["data_root"], opts=_options(
                     args, saved["batch_size"], saved["max_steps"], saved["skip_bad_images"]),
                 limit=saved["limit"], check_images=saved["check_images"], eval_only=saved["eval_only"],
                 checkpoint=saved["checkpoint"], perturb=Perturb(**saved["perturb"]) if saved["perturb"] else None,
                 resume=args.resume)
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


def cmd_ls(args: argparse.Namespace) -> None:
    """List registered names with where they come from."""
    import_plugins(args.plugin)
    if args.what == "protocols":
        from bench.protocol import load_protocol, protocol_files

        rows = [[name, load_protocol(name).version, load_protocol(name).description.split(". ")[0]]
                for name in sorted(protocol_files())]
        print(tabulate(rows, headers=["protocol", "version", "description"]))
        return
    registry = DETECTORS if args.what == "detectors" else SOURCES
    rows = []
    for name in registry.names():
        try:
            entry = registry.entry(name)
        except Exception as err:  # noqa: BLE001 (one broken plugin must not hide the others)
            rows.append([name, f"cannot be loaded: {type(err).__name__}: {err}", "?"])
            continue
        obj = entry.obj
        doc = getattr(obj, "description", "") or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
        rows.append([name, doc, entry.provider])
    print(tabulate(rows, headers=[args.what[:-1], "description", "provided by"]))


def cmd_show(args: argparse.Namespace) -> None:
    """Print a protocol as resolved, or a detector's settings with defaults and overrides applied."""
    from bench.protocol import load_protocol

    import_plugins(args.plugin)
    if args.what == "protocol":
        proto = load_protocol(args.name)
        print(yaml.safe_dump(proto.model_dump(mode="json"), sort_keys=False), end="")
        print(f"# sha256: {proto.sha256()}")
        _print_counts(proto, args.data_root)
        return
    from bench.factory import parse_overrides, resolve_detector

    defaults = load_protocol(args.protocol).detector_defaults if args.protocol else {}
    spec = resolve_detector(args.name, parse_overrides(args.override), defaults)
    print(f"# {spec.name}: {spec.description}\n# class {spec.cls.__module__}.{spec.cls.__qualname__} "
          f"v{spec.cls.version}, provided by {spec.provider}")
    if spec.defaults_applied:
        print(f"# from protocol {args.protocol}: {', '.join(f'{k}={v}' for k, v in spec.defaults_applied.items())}")
    notes = getattr(spec.cls, "portability_notes", "")
    for line in textwrap.wrap(" ".join(notes.split()), 100):
        print(f"# offline analog: {line}")
    print(yaml.safe_dump(dataclasses.asdict(spec.config), sort_keys=False), end="")


def _print_counts(proto, data_root: str | None) -> None:
    from bench.api import data_root_from
    from bench.data.splits import build_sources, resolve_all

    try:
        splits = resolve_all(proto, build_sources(proto, data_root_from(data_root)))
    except BenchError as err:
        print(f"# class counts unavailable: {err}")
        return
    rows = [[key, *split.counts()] for key, split in splits.items()]
    print(tabulate(rows, headers=["split", "n_real", "n_fake"]))


def cmd_validate(args: argparse.Namespace) -> None:
    """Validate protocol files; exit non-zero on the first invalid one."""
    from bench.protocol import protocol_files, validate_file

    targets = [Path(f) for f in args.files] or [protocol_files()[n] for n in sorted(protocol_files())]
    for path in targets:
        proto = validate_file(path)
        print(f"ok  {path.name}: {proto.name} v{proto.version}, {len(proto.test)} test sets, primary {proto.primary}")


def cmd_data(args: argparse.Namespace) -> None:
    """Dispatch ``bench data synth|index|verify``."""
    {"synth": _data_synth, "index": _data_index, "verify": _data_verify, "faces": _data_faces}[args.data_command](args)


def _data_index(args: argparse.Namespace) -> None:
    from bench.data.indexers import index_dataset
    from bench.factory import parse_overrides

    options = parse_overrides(args.option)
    if args.json:
        options["json"] = args.json
    path = index_dataset(args.layout, Path(args.root), Path(args.out) if args.out else None,
                         overwrite=args.overwrite, **options)
    print(f"wrote {path}")
    _print_faces_report(Path(args.root))


def _print_faces_report(root: Path) -> None:
    """Say what face extraction dropped from the indexed folder (its faces_report.json), if it was extracted here."""
    from bench.data.faces import describe

    for line in describe(root):
        print(f"faces report: {line.strip()}")


def _data_faces(args: argparse.Namespace) -> None:
    """Extract face crops from a dataset's videos; exit non-zero when any video failed."""
    from bench.cli_faces import options_from, settings_from
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
    from bench.data.verify import failure_message, format_report, verify_protocol

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
    from bench.data.splits import build_sources
    from bench.data.synthetic import SyntheticSource, write_folder
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
    from bench.protocol import PairedTest

    parts = [proto.train, proto.val]
    for test in proto.test.values():
        parts += [test.real, test.fake] if isinstance(test, PairedTest) else [test]
    wanted: dict[str, list[str]] = {}
    for part in parts:
        if part.source == source_name:
            for subset in part.subsets or []:
                if subset not in wanted.setdefault(part.split, []):
                    wanted[part.split].append(subset)
    return wanted


def cmd_diagnose(args: argparse.Namespace) -> None:
    """Layer-wise GSNR of fresh detectors and/or trained runs."""
    from bench.diagnose import gsnr
    from bench.factory import parse_overrides

    if not args.detector and not args.run:
        raise ConfigError("bench diagnose gsnr needs --detector NAME or --run RUN_DIR (either may repeat).")
    table = gsnr(args.protocol, args.detector or None, [Path(r) for r in args.run] or None, n=args.n,
                 out_dir=Path(args.out), data_root=args.data_root, overrides=parse_overrides(args.override),
                 seed=args.seed)
    print(tabulate(table, headers="keys", showindex=False, floatfmt=".4g"))
    print(f"wrote {Path(args.out) / 'gsnr.csv'} and {Path(args.out) / 'gsnr.png'}")


def cmd_sweep(args: argparse.Namespace) -> None:
    """One run per radius; CSV, plot and the critical optimization radius per detector."""
    from bench.factory import parse_overrides
    from bench.runner import RunnerOptions
    from bench.sweep import cor_summary, format_cor_table, sweep

    table = sweep(args.protocol, args.detector, args.rho, Path(args.out), seed=args.seed, data_root=args.data_root,
                  overrides=parse_overrides(args.override), opts=RunnerOptions(batch_size=args.batch_size),
                  limit=args.limit)
    print(format_cor_table(cor_summary(table)))
    print(f"wrote {Path(args.out) / 'sweep.csv'}, sweep.png and cor.json")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Submit a run or build the markdown pages."""
    from bench import leaderboard

    if args.board_command == "submit":
        path = leaderboard.submit(Path(args.run_dir), Path(args.leaderboard_dir))
        print(f"submitted {path}")
    elif args.board_command == "export":
        print(f"wrote {leaderboard.export(Path(args.leaderboard_dir), Path(args.out))}")
    elif getattr(args, "html", None):
        _board_build_html(args)
    else:
        for path in leaderboard.build(Path(args.leaderboard_dir), Path(args.readme) if args.readme else None):
            print(f"wrote {path}")


def _board_build_html(args: argparse.Namespace) -> None:
    """``bench leaderboard build --html DIR``: the pages, figures and the static site."""
    from bench import leaderboard

    written = leaderboard.build(Path(args.leaderboard_dir), Path(args.readme) if args.readme else None,
                                html=Path(args.html))
    print(f"wrote {len(written)} files; open {Path(args.html) / 'index.html'}")


def cmd_report(args: argparse.Namespace) -> None:
    """Write report.md and its pictures for one run."""
    from bench.leaderboard import report

    written = report(Path(args.run_dir), Path(args.out) if args.out else None)
    print(f"wrote {written[0]} and {len(written) - 1} pictures")


def cmd_reproduce(args: argparse.Namespace) -> None:
    """Re-run a stored result and print, per metric, the stored value, the new one and the difference."""
    import sys

    from bench.reproduce import compare, machine_note, reproduce

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
    from bench.cache import ENV, FeatureCache

    cache = FeatureCache()
    if args.cache_command == "clear":
        removed, freed = cache.clear(args.older_than)
        print(f"removed {removed} entries ({_bytes(freed)}) from {cache.root}")
        return
    rows = cache.info()
    print(f"feature cache: {cache.root} (set by ${ENV})")
    if rows:
        table = [{"namespace": r["namespace"][:12], "features of": _parts_summary(r["parts"]), "entries": r["shards"],
                  "rows": r["items"], "dim": r["dim"], "size": _bytes(r["bytes"]), "last used": r["last_used"]}
                 for r in rows]
        print(tabulate(table, headers="keys", disable_numparse=True))
    print(f"{len(rows)} namespaces, {sum(r['shards'] for r in rows)} entries, "
          f"{sum(r['items'] for r in rows)} feature rows, {_bytes(sum(r['bytes'] for r in rows))} in total")


def _parts_summary(parts, width: int = 60) -> str:
    """The short, scalar parts of a namespace (what the features are of), cut to ``width``."""
    if not isinstance(parts, dict):
        return "?"
    text = " ".join(f"{k}={v}" for k, v in parts.items() if isinstance(v, str | int | float) and len(str(v)) <= 40)
    return text if len(text) <= width else text[: width - 1] + "…"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
