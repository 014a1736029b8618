"""Resolve a protocol's train/val/test definitions into tables of rows to load.

A resolved split is one ``pandas.DataFrame`` with the standard columns plus ``source`` (which source
loads the row), so a test set may combine reals and fakes from different sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.base import Source
from bench.data.registry import SOURCES
from bench.errors import ConfigError, DataError, did_you_mean
from bench.protocol import PairedTest, Perturb, Protocol, Split, catalog


@dataclass
class ResolvedSplit:
    """Rows of one train/val/test set, ready for ``RawDataset``.

    ``notes`` says how the sources read the data where it matters for the results (e.g. video ids
    qualified by subset); ``ignored`` lists files the sources saw but left out, by reason (paths
    as ``<source>:<path>``), so a run can record them.
    """

    name: str
    table: pd.DataFrame
    sources: dict[str, Source]
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    ignored: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> tuple[int, int]:
        """(n_real, n_fake)."""
        return int((self.table["label"] == 0).sum()), int((self.table["label"] == 1).sum())


def build_sources(proto: Protocol, data_root: Path | None) -> dict[str, Source]:
    """Instantiate every source a protocol declares (inline specs or names from ``sources.yaml``)."""
    return {name: build_source(proto, name, data_root) for name in proto.sources}


def build_source(proto: Protocol, name: str, data_root: Path | None) -> Source:
    """Instantiate one source of a protocol (an inline spec or a name from ``sources.yaml``)."""

    spec = proto.sources[name]
    if isinstance(spec, str):
        known = catalog()
        if spec not in known:
            raise ConfigError(f"Protocol {proto.name!r} source {name!r} refers to {spec!r}, which is not in "
                              f"any sources.yaml.{did_you_mean(spec, known)}")
        spec = known[spec]
    spec = dict(spec)
    about = spec.pop("about", None)
    if "type" not in spec:
        raise ConfigError(f"Protocol {proto.name!r} source {name!r} has no `type` "
                          f"(one of {', '.join(SOURCES.names())}).")
    source = SOURCES.get(spec["type"])(name, spec, data_root)
    source.about = about or {}
    return source


def missing_data_message(source: Source, err: DataError) -> str:
    """Extend a source's data error with the catalog's help: what the dataset is, how to get and index it."""
    about = getattr(source, "about", {}) or {}
    parts = [str(err).rstrip(".") + "."]
    if about.get("dataset"):
        parts.append(f"This is {about['dataset']}" + (f", expected as {about['layout']}" if about.get("layout") else "") + ".")
    if about.get("get"):
        parts.append(f"Get it from {about['get']}.")
    if about.get("download"):
        parts.append(f"Download it with `{about['download']}`.")
    if about.get("index"):
        parts.append(f"Index it with `{about['index']}`.")
    if about:
        parts.append("No download needed: try `bench run --protocol synthetic_cross_domain` or `synthetic_universal`.")
    return " ".join(parts)


def natural_key(text: str) -> tuple:
    """Sort key ordering digit runs by value: ``2.png`` before ``10.png`` (frame names are often unpadded)."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in parts)


def _every_nth_frame(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Keep ``k`` frames per group, evenly spaced over its frames in natural id order (all when fewer)."""
    keep = []
    for _, frames in table.groupby("group", sort=True):
        positions = np.unique(np.linspace(0, len(frames) - 1, num=min(k, len(frames))).round().astype(int))
        ids = frames["id"].tolist()
        order = sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))
        keep.append(frames.iloc[[order[p] for p in positions]])
    return pd.concat(keep) if keep else table


def _rows(split: Split, sources: dict[str, Source], label: int | None, limit: int | None,
          extra: tuple[Perturb, ...] = ()) -> pd.DataFrame:
    source = sources[split.source]
    try:
        table = source.select(split.split, split.subsets).copy()
    except DataError as err:
        raise DataError(missing_data_message(source, err)) from None
    if label is not None:
        table = table[table["label"] == label]
    table["source"] = split.source
    if split.frames_per_group:
        table = _every_nth_frame(table, split.frames_per_group)
    both = tuple(p for p in (split.perturb, *extra) if p is not None)
    fake = (split.fake_perturb,) if split.fake_perturb is not None else ()
    chains = [p.chain for p in (*fake, *both) if p.chain is not None]
    if len(chains) > 1:
        raise ConfigError(f"Split {split.split!r} of source {split.source!r} gets the chains {', '.join(chains)} from "
                          "the protocol and --perturb; a chain draws the same degradations each time, so apply it once "
                          "(leave it out of --perturb).")
    # Format alignment (fake_perturb) runs before degradations that hit both classes.
    table["ops"] = [fake + both if lab == 1 else both for lab in table["label"]]
    cap = min(c for c in (split.max_per_class, limit) if c is not None) if (split.max_per_class or limit) else None
    if cap is not None:
        rng = np.random.default_rng(split.sample_seed)
        parts = []
        for _, part in table.groupby("label", sort=True):
            keep = np.sort(rng.choice(len(part), size=min(cap, len(part)), replace=False))
            parts.append(part.iloc[keep])
        table = pd.concat(parts) if parts else table
    return table


def resolve_split(name: str, spec: Split | PairedTest, sources: dict[str, Source],
                  limit: int | None = None, perturb: Perturb | None = None) -> ResolvedSplit:
    """Select the rows of one protocol split; ``limit`` caps images per class (quick tries).

    ``perturb`` is an extra degradation for every row (a robustness run from the command line).
    """
    extra = tuple(p for p in (getattr(spec, "perturb", None) if isinstance(spec, PairedTest) else None, perturb) if p)
    if isinstance(spec, PairedTest):
        table = pd.concat([_rows(spec.real, sources, 0, limit, extra), _rows(spec.fake, sources, 1, limit, extra)])
    else:
        table = _rows(spec, sources, None, limit, extra)
    table = table.sort_values(["source", "id"], kind="stable").reset_index(drop=True)
    if table.empty:
        raise DataError(f"Split {name!r} selects no images; check its source, split and subsets in the protocol.")
    used = {s: sources[s] for s in table["source"].unique()}
    fingerprint = Source.fingerprint(table.assign(id=table["source"] + ":" + table["id"]))
    notes = list(dict.fromkeys(note for s in used.values() for note in getattr(s, "notes", [])))
    ignored: dict[str, list[str]] = {}
    for part in ([spec.real, spec.fake] if isinstance(spec, PairedTest) else [spec]):
        for reason, paths in sources[part.source].ignored_files(part.split, part.subsets).items():
            ignored.setdefault(reason, []).extend(f"{part.source}:{p}" for p in paths)
    ignored = {reason: sorted(set(paths)) for reason, paths in sorted(ignored.items())}
    return ResolvedSplit(name, table, used, fingerprint, notes, ignored)


def resolve_all(proto: Protocol, sources: dict[str, Source], limit: int | None = None,
                perturb: Perturb | None = None) -> dict[str, ResolvedSplit]:
    """Resolve train, val and every test set; keys are ``train``, ``val`` and ``test/<name>``.

    ``perturb`` degrades every test set (never train or val). A protocol that asks for test images at
    their stored resolution (``test_resolution: native``) is refused here, before any data is read:
    the runner cannot yet hand a detector uncropped images of varying sizes, and evaluating them
    through the detector's own crop instead would report the other test mode under this one's name.
    """
    if proto.test_resolution == "native":
        twin = proto.name.removesuffix("_nocrop")
        fix = (f"run {twin!r} (each detector's own eval transform) instead" if twin != proto.name else
               "set test_resolution: detector to evaluate through each detector's own eval transform")
        raise ConfigError(f"Protocol {proto.name!r} evaluates test images at their stored resolution "
                          f"(test_resolution: native), which this version of the runner does not apply yet; {fix}.")
    out = {"train": resolve_split("train", proto.train, sources, limit),
           "val": resolve_split("val", proto.val, sources, limit)}
    for name, spec in proto.test.items():
        out[f"test/{name}"] = resolve_split(name, spec, sources, limit, perturb)
    return out
