"""``run()``: the whole pipeline, top to bottom.

protocol → data sources → detector → runner.fit → runner.predict → metrics → run directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.checkpoint import CHECKPOINT, check_origin, metadata_for, read_checkpoint, save_checkpoint
from bench.data.splits import ResolvedSplit, build_sources, resolve_all
from bench.errors import ConfigError, DataError, ImageError
from bench.factory import resolve_detector
from bench.metrics import check_two_classes, compute_metrics, group_means
from bench.protocol import Perturb, check_select, load_protocol
from bench.results import SCHEMA_VERSION, command_line, environment, new_run_dir, now_iso, write_run
from bench.runner import Runner, RunnerOptions


def data_root_from(value: str | Path | None) -> Path | None:
    """``--data-root``, else ``$BENCH_DATA_ROOT``, else none."""
    value = value or os.environ.get("BENCH_DATA_ROOT")
    return Path(value) if value else None


def run(protocol: str | Path, detector: str, *, seed: int = 0, overrides: dict[str, Any] | None = None,
        data_root: str | Path | None = None, out_dir: str | Path = "runs", opts: RunnerOptions | None = None,
        limit: int | None = None, skip_bad_images: bool = False, run_name: str | None = None,
        eval_only: bool = False, checkpoint: str | Path | None = None, perturb: Perturb | None = None) -> dict[str, Any]:
    """Train, select on validation, evaluate every test set and write a run directory; returns results.

    With ``eval_only``, nothing is trained: the weights come from ``checkpoint`` (a run directory or a
    weights file, loaded strictly). ``perturb`` degrades every test set (an ad-hoc robustness check).
    """
    started, t0 = now_iso(), time.perf_counter()
    opts = opts or RunnerOptions()
    proto = load_protocol(protocol)                                              # 1. protocol
    spec = resolve_detector(detector, overrides, proto.detector_defaults)       # 2. detector settings
    select = check_select(getattr(spec.config, "select", None) or proto.val.select)
    run_dir = new_run_dir(Path(out_dir), proto.name, detector, seed, run_name)
    sources = build_sources(proto, data_root_from(data_root))                   # 3. data
    if eval_only and checkpoint is None:
        raise ConfigError("--eval-only needs --checkpoint PATH (a run directory or a weights file).")
    state, meta = (read_checkpoint(Path(checkpoint), spec.cls.checkpoint_globals) if checkpoint is not None
                   else (None, {}))
    splits = resolve_all(proto, sources, limit, perturb)
    for key, split in splits.items():  # training, selection and AUC all need both classes
        check_two_classes(split.table["label"].to_numpy(), where=f"{proto.name} {key}")
    opts.skip = find_bad_images(splits, skip_bad_images)

    runner = Runner(opts, seed)                                                 # 4. fit (seeded)
    det = spec.build()
    fit_start = time.perf_counter()
    if state is not None:
        check_origin(meta, spec.info(), str(checkpoint))
        det.load_checkpoint(state, str(checkpoint), meta)
    if eval_only:
        selection = {"rule": "eval_only", "checkpoint": str(checkpoint), "checkpoint_metadata": meta}
    else:
        selection = runner.fit(det, splits["train"], splits["val"], select,
                               proto.budget.max_epochs, proto.budget.max_steps)
    fit_seconds = time.perf_counter() - fit_start
    predictions, metrics = {}, {}                                               # 5. predict + metrics
    for key, split in splits.items():
        if key.startswith("test/"):
            scores = runner.predict(det, split)
            frame = prediction_frame(split, scores)
            kept = frame.dropna(subset=["score"])
            metrics[split.name] = compute_metrics(kept["label"].to_numpy(), kept["score"].to_numpy(),
                                                  proto.metrics, groups=(kept["source"] + ":" + kept["group"]).to_numpy(),
                                                  where=f"{proto.name} test/{split.name}")
            predictions[split.name] = frame
    predict_seconds = time.perf_counter() - fit_start - fit_seconds

    partial = [r for r, on in [(f"--limit {limit}", limit), (f"--max-steps {opts.max_steps}", opts.max_steps),
                                (f"--perturb {perturb}", perturb)] if on]
    result = {
        "schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "status": "complete",
        "partial": bool(partial), "partial_reasons": partial,
        "protocol": {"name": proto.name, "version": proto.version, "sha256": proto.sha256(),
                     "primary": proto.primary, "metrics": proto.metrics, "tests": list(proto.test),
                     "groups": proto.groups},
        "detector": {**spec.info(), "params_total": sum(p.numel() for p in det.parameters()),
                     "params_trainable": sum(p.numel() for p in det.parameters() if p.requires_grad)},
        "seed": seed, "selection": selection,
        "metrics": metrics, "groups": group_means(metrics, proto.groups),
        "data": {s.name: {"fingerprint": s.fingerprint, "n": len(s.table), "n_real": s.counts()[0],
                          "n_fake": s.counts()[1]} for s in splits.values()},
        "skipped_images": {"count": sum(len(v) for v in opts.skip.values()),
                           "ids": {k: sorted(splits_by_name(splits)[k].table["id"].iloc[sorted(v)]) for k, v in
                                   opts.skip.items()}},
        "runner": {"batch_size": opts.batch_size, "workers": opts.workers, "precision": opts.precision,
                   "max_steps": opts.max_steps, "limit": limit, "eval_only": eval_only,
                   "checkpoint": str(checkpoint) if checkpoint else None,
                   "perturb": perturb.model_dump(exclude_none=True) if perturb else None},
        "env": environment(str(runner.accelerator.device), runner.accelerator.num_processes, opts.precision),
        "timing": {"started_at": started, "finished_at": now_iso(), "fit_seconds": round(fit_seconds, 2),
                   "predict_seconds": round(predict_seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2)},
        "command": command_line(),
    }
    if runner.is_main:                                                          # 6. results (main process only)
        config = {"protocol": proto.model_dump(mode="json"), "detector": spec.info(), "seed": seed,
                  "runner": result["runner"], "data_root": str(data_root_from(data_root) or ""),
                  "command": result["command"]}
        run_dir = write_run(run_dir, result, config, runner.log, predictions,
                            lambda d: save_checkpoint(det, d / CHECKPOINT, metadata_for(result["detector"])),
                            rename_on_clash=run_name is None)
        result["run_id"] = run_dir.name
    runner.accelerator.wait_for_everyone()
    result["run_dir"] = str(run_dir)
    return result


def prediction_frame(split: ResolvedSplit, scores) -> pd.DataFrame:
    """Per-image predictions: index, source, id, subset, group, label, score (logit, > 0 means fake)."""
    table = split.table
    return pd.DataFrame({"index": range(len(table)), "source": table["source"], "id": table["id"],
                         "subset": table["subset"], "group": table["group"], "label": table["label"],
                         "score": scores})


def splits_by_name(splits: dict[str, ResolvedSplit]) -> dict[str, ResolvedSplit]:
    """Index resolved splits by their own name (``train``, ``val``, test names)."""
    return {s.name: s for s in splits.values()}


def find_bad_images(splits: dict[str, ResolvedSplit], skip: bool) -> dict[str, set[int]]:
    """Decode every file once; stop with the list of bad files unless ``skip`` (then return rows to skip)."""
    bad: dict[str, set[int]] = {}
    listing: list[str] = []
    for split in splits.values():
        for source_name, source in split.sources.items():
            rows = split.table.index[split.table["source"] == source_name]
            for item_id, reason in source.find_bad_images(split.table.loc[rows]):
                row = int(rows[split.table.loc[rows, "id"].tolist().index(item_id)])
                bad.setdefault(split.name, set()).add(row)
                listing.append(reason)
    if listing and not skip:
        shown = "; ".join(listing[:10]) + (f"; and {len(listing) - 10} more" if len(listing) > 10 else "")
        raise ImageError(f"{len(listing)} image file(s) cannot be used: {shown}. Fix or remove them, or pass "
                         "--skip-bad-images to leave them out (the results then record how many were skipped).")
    for name, rows in bad.items():
        split = splits_by_name(splits)[name]
        if len(rows) == len(split.table):
            raise DataError(f"Every image of split {name!r} is unreadable; nothing is left to use.")
    return bad
