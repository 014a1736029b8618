"""What results.json says about a run: assembled from what :func:`bench.api.run` measured."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.data.splits import ResolvedSplit
from bench.metrics import group_means, is_count
from bench.run.provenance import command_line, origin
from bench.run.results import SCHEMA_VERSION, environment, now_iso


def assemble(*, run_dir, proto, spec, det, seed: int, selection: dict, metrics: dict, splits: dict[str, ResolvedSplit],
             runner, arguments: dict, timing: dict, absent: dict[str, set[int]],
             conversions: dict[str, dict[int, int]], threshold: dict | None = None, cost: dict | None = None,
             predictions: dict[str, pd.DataFrame] | None = None, rounds: list[dict] | None = None) -> dict[str, Any]:
    """The results.json of a run (schema :data:`bench.run.results.SCHEMA_VERSION`).

    A temporal run adds ``rounds`` (:func:`bench.run.rounds.record`); its ``selection`` and ``threshold``
    are then the last round's (the weights of its checkpoint).

    Group counts (``n_real``, ``n_fake``, ``n_videos``) are distinct images over the member test sets
    (:mod:`bench.data.distinct`), computed from ``predictions`` when given.
    """
    opts = runner.opts
    partial = [r for r, on in [(f"--limit {arguments['limit']}", arguments["limit"]),
                               (f"--max-steps {opts.max_steps}", opts.max_steps),
                               (f"--perturb {arguments['perturb']}", arguments["perturb"])] if on]
    skipped = sum(len(v) for v in absent.values())
    by_name = {s.name: s for s in splits.values()}
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "status": "complete",
        "partial": bool(partial), "partial_reasons": partial,
        "origin": origin(arguments["eval_only"], arguments["checkpoint"], skipped, partial),
        "protocol": {"name": proto.name, "version": proto.version, "sha256": proto.sha256(),
                     "primary": proto.primary, "metrics": proto.metrics, "tests": list(proto.test),
                     "groups": proto.groups},
        "detector": {**spec.info(), "overrides": arguments["overrides"], "uses_train_fakes": det.uses_train_fakes,
                     "built": det.build_records(),
                     "params_total": sum(p.numel() for p in det.parameters()),
                     "params_trainable": sum(p.numel() for p in det.parameters() if p.requires_grad),
                     "transforms": {"train": repr(det.transform(train=True)), "eval": repr(det.transform(train=False))}},
        "seed": seed, "selection": selection, "threshold": threshold,
        "metrics": metrics, "groups": distinct_group_counts(group_means(metrics, proto.groups), proto, predictions),
        "data": {s.name: data_record(s, absent, conversions) for s in splits.values()},
        "skipped_images": {"count": skipped, "ids": {k: sorted(by_name[k].table["id"].iloc[sorted(v)])
                                                     for k, v in absent.items() if v}},
        "runner": {"batch_size": opts.batch_size, "workers": runner.workers_used, "precision": runner.precision,
                   "threads": opts.threads, "max_steps": opts.max_steps, "limit": arguments["limit"],
                   "eval_only": arguments["eval_only"], "checkpoint": arguments["checkpoint"],
                   "check_images": arguments["check_images"], "skip_bad_images": opts.skip_bad_images,
                   "resumed": arguments.get("resumed", False), "perturb": arguments["perturb"],
                   "feature_cache": runner.cache.report() if runner.cache is not None else {"enabled": False}},
        "env": environment(str(runner.accelerator.device), runner.accelerator.num_processes, runner.precision),
        "timing": {**timing, "finished_at": now_iso()}, "cost": cost,
        "command": arguments.get("command") or command_line(),
        **({"rounds": rounds} if rounds is not None else {}),
    }


def distinct_group_counts(groups: dict, proto, predictions: dict[str, pd.DataFrame] | None) -> dict:
    """``groups`` with each group's counts replaced by its distinct images (and videos) per class."""
    from bench.data.distinct import distinct_counts, pixel_context, synthetic_sources

    if predictions is None:
        return groups
    synthetic = synthetic_sources(proto.sources)
    out = {}
    for name, values in groups.items():
        members = [(predictions[t].dropna(subset=["score"]), pixel_context(proto.test[t])) for t in proto.groups[name]]
        counts = {k: v for k, v in values.items() if not is_count(k)}
        out[name] = {**counts, **distinct_counts(members, synthetic)}
    return out


def data_record(split: ResolvedSplit, absent: dict[str, set[int]], conversions: dict[str, dict[int, int]]) -> dict:
    """One split: counts, fingerprint, number of videos, skipped images, notes and image conversions by kind."""
    from bench.data import decode

    n_real, n_fake = split.counts()
    table = split.table
    record = {"fingerprint": split.fingerprint, "n": len(table), "n_real": n_real, "n_fake": n_fake,
              "skipped": len(absent.get(split.name, ())), "notes": list(split.notes),
              "left_out_files": {reason: len(paths) for reason, paths in getattr(split, "ignored", {}).items()}}
    if (table["group"] != table["id"]).any():
        record["n_videos"] = int((table["source"] + ":" + table["group"]).nunique())
    codes = pd.Series(list(conversions.get(split.name, {}).values()), dtype="int64")
    names = decode.CONVERSIONS
    record["conversions"] = {names[c] if c < len(names) else str(c): int(n)
                             for c, n in codes[codes != 0].value_counts().sort_index().items()}
    return record
