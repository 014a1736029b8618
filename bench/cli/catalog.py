"""``bench ls``, ``bench show`` and ``bench validate``: what is registered and how it resolves."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

import yaml
from tabulate import tabulate

from bench.data.registry import SOURCES
from bench.errors import BenchError
from bench.plugin.registry import DETECTORS, import_plugins

EXAMPLES = {
    "ls": "bench ls detectors\n  bench ls protocols\n  bench ls sources",
    "show": "bench show protocol synthetic_universal\n  bench show detector univfd -o lr=1e-3",
    "validate": "bench validate                       # every shipped protocol\n"
                "  bench validate protocols/my_protocol.yaml",
}


def add(command) -> None:
    """Register ``bench ls``, ``bench show`` and ``bench validate``."""
    from bench.protocol.keys import describe

    ls = command("ls", EXAMPLES["ls"], "List registered detectors, protocols or source types.")
    ls.add_argument("what", choices=["detectors", "protocols", "sources"])
    ls.add_argument("--plugin", action="append", default=[], help="import a module that registers detectors")

    show = command("show", EXAMPLES["show"], "Show a protocol (resolved) or a detector's resolved settings with defaults.")
    show.add_argument("what", choices=["protocol", "detector"])
    show.add_argument("name")
    show.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--protocol", help="for detectors: apply this protocol's detector_defaults")
    show.add_argument("--data-root", help="for protocols: count images per test set when the data is present")
    show.add_argument("--plugin", action="append", default=[])

    validate = command("validate", EXAMPLES["validate"], "Check protocol files against the strict schema (default: every shipped one).")
    validate.add_argument("files", nargs="*", help="protocol YAML files")

    validate.epilog = f"{validate.epilog}\n\nprotocol keys (unknown keys are errors):\n{describe()}"
    ls.set_defaults(handler=cmd_ls)
    show.set_defaults(handler=cmd_show)
    validate.set_defaults(handler=cmd_validate)


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
        for plan in proto.rounds.plans() if proto.rounds is not None else []:
            print(f"# round {plan.index} ({proto.rounds.training}, {proto.rounds.init}): train and select on "
                  f"{', '.join(plan.train)}; next period {', '.join(plan.next)}; growing: {len(plan.growing)} generators")
        _print_counts(proto, args.data_root)
        return
    from bench.plugin.factory import parse_overrides, resolve_detector

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
    _print_transforms(spec)


def _print_transforms(spec) -> None:
    """The detector's train and eval transforms, step by step; built with a random-init backbone (and said so)
    when its weights cannot be loaded here: the steps and constants come from the architecture and settings."""
    try:
        det = spec.build()
    except BenchError as err:
        backbone = getattr(spec.config, "backbone", None)
        if not isinstance(backbone, str):
            print(f"# transforms: not shown, the detector cannot be built here ({err})")
            return
        random_init = f"{backbone.partition('@')[0]}@none"
        det = spec.cls(dataclasses.replace(spec.config, backbone=random_init))
        print(f"# transforms built with backbone {random_init} (random init: its weights are not available here)")
    for train in (True, False):
        steps = getattr(det.transform(train=train), "transforms", [det.transform(train=train)])
        print(f"# {'train' if train else 'eval'} transform:")
        for step in steps:
            print(f"#   {step!r}")


def _print_counts(proto, data_root: str | None) -> None:
    from bench.api import data_root_from
    from bench.data.splits import build_sources
    from bench.run.rounds import all_splits, plan_rounds

    try:  # a temporal protocol's splits are its rounds' (r<k>/train ...), not its templates'
        splits = all_splits(plan_rounds(proto, build_sources(proto, data_root_from(data_root)), None, None))
    except BenchError as err:
        print(f"# class counts unavailable: {err}")
        return
    rows = [[key, *split.counts()] for key, split in splits.items()]
    print(tabulate(rows, headers=["split", "n_real", "n_fake"]))


def cmd_validate(args: argparse.Namespace) -> None:
    """Validate protocol files; exit non-zero on the first invalid one."""
    from bench.data.validate import validate_file
    from bench.protocol import protocol_files

    targets = [Path(f) for f in args.files] or [protocol_files()[n] for n in sorted(protocol_files())]
    for path in targets:
        proto = validate_file(path)
        print(f"ok  {path.name}: {proto.name} v{proto.version}, {len(proto.test)} test sets, primary {proto.primary}")
