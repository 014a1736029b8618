"""``run()``: the whole pipeline, top to bottom.

protocol → detector settings → hardware → data (cheap checks) → run directory → detector (contract
checked) → runner.fit → threshold on validation → runner.predict → metrics → cost → results. Everything a user can get wrong is
checked before the first expensive step; the run directory is marked INCOMPLETE until results.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from bench.data.identity import check_held_out, identify_all
from bench.data.splits import ResolvedSplit, build_sources
from bench.errors import BenchError, ConfigError
from bench.inputs import check_seeds
from bench.metrics import DEPLOYMENT_METRICS, check_two_classes, compute_metrics, youden_threshold
from bench.plugin.factory import resolve_detector
from bench.protocol import Perturb, check_select, load_protocol
from bench.run import record
from bench.run.checkpoint import CHECKPOINT, check_origin, metadata_for, read_checkpoint, save_checkpoint
from bench.run.checks import check_contract, check_files, check_writable
from bench.run.cost import cost_record
from bench.run.files import RESUME_HINT
from bench.run.provenance import command_line
from bench.run.results import finish_run, new_run_dir, now_iso, open_run_dir, resumable_run_dir
from bench.run.resume import GUARD, RunLock, check_unchanged, settings_sha256
from bench.run.resume import guard as resume_guard
from bench.run.rounds import Round, RoundResult, all_splits, load_round, merged, plan_rounds, save_round
from bench.run.rounds import record as rounds_record
from bench.run.runner import Runner, RunnerOptions
from bench.run.training import STATE_DIR


def data_root_from(value: str | Path | None) -> Path | None:
    """``--data-root``, else ``$BENCH_DATA_ROOT``, else none."""
    value = value or os.environ.get("BENCH_DATA_ROOT")
    return Path(value) if value else None


def run(protocol: str | Path, detector: str, *, seed: int = 0, overrides: dict[str, Any] | None = None,
        data_root: str | Path | None = None, out_dir: str | Path = "runs", opts: RunnerOptions | None = None,
        limit: int | None = None, check_images: bool = False, run_name: str | None = None,
        eval_only: bool = False, checkpoint: str | Path | None = None, perturb: Perturb | None = None,
        resume: str | Path | None = None) -> dict[str, Any]:
    """Train, select on validation, evaluate every test set and write a run directory; returns results.

    With ``eval_only``, nothing is trained: the weights come from ``checkpoint`` (a run directory or a
    weights file, loaded strictly); without it, ``checkpoint`` is a warm start. ``perturb`` degrades
    every test set. ``check_images`` decodes every file before the run (default: cheap checks, and
    decode failures during the run follow ``opts.skip_bad_images``). ``resume`` continues an
    interrupted run directory (the other arguments must be the ones it was started with).
    """
    started, t0 = now_iso(), time.perf_counter()
    opts = dataclasses.replace(opts or RunnerOptions())  # this run's copy: the caller's is never changed
    arguments = {"protocol": _absolute(protocol) if str(protocol).endswith((".yaml", ".yml")) else str(protocol), "detector": detector, "seed": seed, "overrides": overrides or {},
                 "data_root": _absolute(data_root_from(data_root)), "limit": limit, "check_images": check_images,
                 "eval_only": eval_only, "checkpoint": _absolute(checkpoint),
                 "perturb": perturb.model_dump(exclude_none=True) if perturb else None,
                 "runner": {k: v for k, v in dataclasses.asdict(opts).items() if k != "skip"}}
    proto = load_protocol(protocol)                                              # 1. protocol (and its rounds)
    spec = resolve_detector(detector, overrides, proto.detector_defaults)       # 2. detector settings
    select = check_select(getattr(spec.config, "select", None) or proto.val.select)
    if eval_only and checkpoint is None:
        raise ConfigError("--eval-only needs --checkpoint PATH (a run directory or a weights file).")
    if opts.decode == "gpu" and not spec.cls.tensor_input:
        raise ConfigError(f"--decode gpu hands the transform uint8 tensors, but detector {detector!r} takes PIL "
                          f"images (tensor_input is False); use --decode cpu.")
    check_seeds([seed], "This run")
    check_writable(Path(out_dir))
    runner = Runner(opts, seed, detector)                                       # 3. hardware
    arguments["runner"]["precision"] = runner.precision  # as resolved (the launcher's, if any): resumes keep it
    sources = build_sources(proto, data_root_from(data_root))                   # 4. data of every round (cheap checks)
    rounds = plan_rounds(proto, sources, limit, perturb)  # one round without `rounds` in the protocol
    splits = all_splits(rounds)
    for key, split in splits.items():  # training, selection and AUC all need both classes
        check_two_classes(split.table["label"].to_numpy(), where=f"{proto.name} {key}")
    identity = identify_all(splits)  # one stat per file: which file each row is, and what it holds
    for rnd in rounds:
        check_held_out(rnd.proto, rnd.splits, identity)  # no test image is one of its round's train or val images
    opts.skip = check_files(splits, full=check_images, skip=opts.skip_bad_images, runner=runner)
    runner.ledger.absent.update({k: set(v) for k, v in opts.skip.items()})
    unchanged = resume_guard(proto.sha256(), settings_sha256(arguments, spec.config_sha256()),
                             {name: ident.fingerprint for name, ident in identity.items()})
    recorded = resumable_run_dir(Path(resume)) if resume is not None else None
    if recorded is not None:  # a resume must find the data, protocol and settings it started with
        check_unchanged(Path(resume), recorded.get(GUARD), unchanged)
    command = recorded["command"] if recorded is not None else command_line()
    with _locked_run_dir(runner, out_dir, proto.name, detector, seed, run_name, resume,  # 5. run directory
                         {"arguments": arguments, "protocol": proto.model_dump(mode="json"), "detector": spec.info(),
                          "data_root": str(data_root_from(data_root) or ""), "command": command,
                          GUARD: unchanged}) as run_dir:
        try:
            det, done = None, []
            for rnd in rounds:  # steps 6-9 per round; a resumed run keeps the rounds it finished
                finished = load_round(run_dir, rnd, runner)
                if finished is None:
                    det, finished = run_round(runner, spec, rnd, done, select, proto.budget, run_dir,
                                              checkpoint, eval_only)
                done.append(finished)
            det = det if det is not None else last_weights(spec, done)
            metrics, predictions, val_frame = merged(rounds, done)
            fit_seconds, predict_seconds = sum(r.fit_seconds for r in done), sum(r.predict_seconds for r in done)
            images = sum(int(f["score"].notna().sum()) for f in predictions.values())
            cost = cost_record(det, runner.accelerator.device, fit_seconds, predict_seconds, images,  # 10. cost
                               runner.cache.report() if runner.cache is not None else None, tests=list(predictions))
        except BenchError:
            _discard_if_unstarted(runner, run_dir, resume)
            raise
        absent, conversions = runner.ledger.merged()
        timing = {"started_at": started, "fit_seconds": round(fit_seconds, 2),  # 11. results (main process)
                  "predict_seconds": round(predict_seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2)}
        result = record.assemble(run_dir=run_dir, proto=proto, spec=spec, det=det, seed=seed,
                                 selection=done[-1].selection, metrics=metrics, splits=splits, runner=runner,
                                 timing=timing, absent=absent, conversions=conversions, threshold=done[-1].threshold,
                                 cost=cost, predictions=predictions, rounds=rounds_record(rounds, done),
                                 arguments={**arguments, "resumed": resume is not None, "command": command})
        if runner.is_main:
            finish_run(run_dir, result, runner.log, predictions,
                       lambda d: save_checkpoint(det, d / CHECKPOINT, metadata_for(result["detector"]),
                                                 RESUME_HINT.format(run_dir=d)), val_frame)
        runner.accelerator.wait_for_everyone()
    result["run_dir"] = str(run_dir)
    return result


def run_round(runner: Runner, spec, rnd: Round, done: list[RoundResult], select: str, budget, run_dir: Path,
              checkpoint, eval_only: bool) -> tuple[Any, RoundResult]:
    """Steps 6-9 of one round: build the detector, fit (select on val), threshold on val, predict every test set."""
    det, meta = round_detector(spec, rnd, done, checkpoint, runner, eval_only)  # 6. detector (contract checked)
    fit_start = time.perf_counter()                                              # 7. fit (select on val, never test)
    selection = ({"rule": "eval_only", "checkpoint": str(checkpoint), "checkpoint_metadata": meta}
                 if eval_only else runner.fit(det, rnd.splits["train"], rnd.splits["val"], select, budget.max_epochs,
                                              budget.max_steps, run_dir=run_dir, round_index=rnd.index))
    fit_seconds = time.perf_counter() - fit_start
    val_frame, threshold = val_threshold(runner, det, rnd.splits["val"])        # 8. threshold on val (selected weights)
    predict_start = time.perf_counter()
    predictions, metrics = evaluate(runner, det, rnd.proto, rnd.splits, threshold["value"])  # 9. predict + metrics
    result = RoundResult(selection, threshold, val_frame, predictions, metrics, fit_seconds,
                         time.perf_counter() - predict_start)
    return det, save_round(run_dir, runner, rnd, result, det)


def round_detector(spec, rnd: Round, done: list[RoundResult], checkpoint, runner: Runner,
                   eval_only: bool) -> tuple[Any, dict[str, str]]:
    """The detector a round starts from, contract checked, and its checkpoint's metadata.

    A protocol without rounds: built, with ``checkpoint`` loaded (eval-only weights or a warm start).
    A round of a temporal protocol is built from the run's seed in every round (so a resumed run
    builds what an uninterrupted one did), then takes the previous round's selected weights when
    the protocol says ``init: continued``, else ``checkpoint`` as a protocol without rounds does.
    """
    from accelerate.utils import set_seed

    if rnd.plan is not None:
        set_seed(runner.seed)
        runner.log.append({"event": "round", "round": rnd.index, "train": list(rnd.plan.train)})
    det = spec.build()
    if rnd.init == "continued" and done:
        det.load_state_dict(done[-1].weights, strict=False)
        meta = {}
    else:
        meta = load_weights(det, spec, checkpoint)
    check_contract(det, spec.name, runner.accelerator, train=not eval_only)
    return det, meta


def last_weights(spec, done: list[RoundResult]):
    """The final round's selected detector, rebuilt (a resumed run whose rounds had all finished)."""
    det = spec.build()
    det.load_state_dict(done[-1].weights, strict=False)
    return det


def load_weights(det, spec, checkpoint: str | Path | None) -> dict[str, str]:
    """Load ``checkpoint`` (eval-only weights or a warm start) into ``det``; return its metadata."""
    if checkpoint is None:
        return {}
    state, meta = read_checkpoint(Path(checkpoint), spec.cls.checkpoint_globals)
    check_origin(meta, spec.info(), str(checkpoint))
    det.load_checkpoint(state, str(checkpoint), meta)
    return meta


def val_threshold(runner: Runner, det, val: ResolvedSplit) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The selected weights' scores on the source validation split, and the threshold chosen on them.

    The threshold maximises balanced accuracy on validation (:func:`bench.metrics.youden_threshold`);
    ``acc_val_thr`` applies it to every test set, as a deployed detector would.
    """
    with runner.cache_uncounted():  # the fit already read these features and counted them
        frame = prediction_frame(val, runner.predict(det, val))
    kept = frame.dropna(subset=["score"])
    chosen = youden_threshold(kept["label"].to_numpy(), kept["score"].to_numpy(), where="the validation split")
    return frame, {"rule": "max_balanced_accuracy_on_val", "split": val.name, **chosen}


def evaluate(runner: Runner, det, proto, splits: dict[str, ResolvedSplit],
             threshold: float | None = None) -> tuple[dict, dict]:
    """Scores and metrics of every test set (only images skipped with --skip-bad-images lack a score).

    Metrics: the protocol's, then :data:`bench.metrics.DEPLOYMENT_METRICS` (``acc_val_thr`` only
    when a validation ``threshold`` is given).
    """
    names = list(dict.fromkeys([*proto.metrics, *(m for m in DEPLOYMENT_METRICS
                                                  if m != "acc_val_thr" or threshold is not None)]))
    predictions, metrics = {}, {}
    for key, split in splits.items():
        if key.startswith("test/"):
            frame = prediction_frame(split, runner.predict(det, split))
            kept = frame.dropna(subset=["score"])
            metrics[split.name] = compute_metrics(kept["label"].to_numpy(), kept["score"].to_numpy(), names,
                                                  groups=(kept["source"] + ":" + kept["group"]).to_numpy(),
                                                  where=f"{proto.name} test/{split.name}", val_threshold=threshold)
            predictions[split.name] = frame
    return predictions, metrics


def _discard_if_unstarted(runner: Runner, run_dir: Path, resume) -> None:
    """A run stopped by a user error before any epoch was saved leaves no directory behind."""
    if runner.is_main and resume is None and not (run_dir / STATE_DIR).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in (run_dir.parent, run_dir.parent.parent):  # <detector>/ and <protocol>/ when now empty
            try:
                parent.rmdir()
            except OSError:
                break


@contextmanager
def _locked_run_dir(runner: Runner, out_dir, protocol: str, detector: str, seed: int, run_name: str | None,
                    resume, config: dict) -> Iterator[Path]:
    """Make (or, with ``resume``, reuse) the run directory and hold its lock (main process) for the run.

    Every process gets its path; a directory another run holds is refused on every process.
    """
    from accelerate.utils import broadcast_object_list

    found: list = [Path(resume) if resume is not None else None, None]
    lock = None
    if runner.is_main:
        try:
            if resume is None:
                found[0] = open_run_dir(new_run_dir(Path(out_dir), protocol, detector, seed, run_name), config,
                                        rename_on_clash=run_name is None)
            lock = RunLock(found[0]).acquire()
            if resume is not None:
                resumable_run_dir(found[0])  # still unfinished now that it is ours
        except BenchError as err:
            found[1] = str(err)
    if runner.accelerator.num_processes > 1:
        broadcast_object_list(found)
    try:
        if found[1] is not None:
            raise BenchError(found[1])
        yield Path(found[0])
    finally:
        if lock is not None:
            lock.release()


def prediction_frame(split: ResolvedSplit, scores) -> pd.DataFrame:
    """Per-image predictions: index, source, id, subset, group, label, score (logit, > 0 means fake).

    Scores are rounded to the 6 significant digits the predictions files keep, so every metric
    (a threshold or a calibration bin included) is computed from exactly the numbers written.
    """
    table = split.table
    written = [float(f"{float(x):.6g}") for x in scores]
    return pd.DataFrame({"index": range(len(table)), "source": table["source"], "id": table["id"],
                         "subset": table["subset"], "group": table["group"], "label": table["label"],
                         "score": written})


def _absolute(path) -> str | None:
    """An absolute path for a file argument (so a resumed run finds it from anywhere); names stay names."""
    if path is None:
        return None
    text = str(path)
    return str(Path(text).expanduser().resolve()) if Path(text).expanduser().exists() else text
