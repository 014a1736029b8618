"""The rounds of a run: each round's splits, what a finished round keeps, and how a resume finds it.

A protocol without rounds is one round, run exactly as before. A temporal protocol
(:mod:`bench.protocol.rounds`) has several: :func:`plan_rounds` resolves each round's own train,
val and test splits (train and val named ``r<k>_train``/``r<k>_val`` so that every split of the run
has its own name in the ledger, the feature-cache report and results.json). :func:`bench.api.run`
loops over them; the runner never knows.

A finished round of a temporal run is kept under ``state/rounds/`` (its record, predictions and
validation scores, and the selected weights of the latest round) before the next round starts,
so ``--resume`` skips the rounds a run finished and continues the first unfinished one at its last
saved epoch (the epoch state records its round: :func:`bench.run.training.load_state`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.data.splits import ResolvedSplit, resolve_all
from bench.plugin.weights import trained_state
from bench.protocol.rounds import RoundPlan, round_protocols
from bench.run.files import RESUME_HINT, make_dir, tensor_bytes, write_with
from bench.run.training import STATE_DIR

_ROUNDS_DIR = "rounds"


@dataclass
class Round:
    """One round: its plan (None for a protocol without rounds), its own protocol and its resolved splits."""

    plan: RoundPlan | None
    proto: Any
    splits: dict[str, ResolvedSplit]
    #: ``fresh`` or ``continued`` (the temporal protocol's ``rounds.init``).
    init: str = "fresh"

    @property
    def index(self) -> int:
        """1-based round number (1 for a protocol without rounds)."""
        return self.plan.index if self.plan is not None else 1


@dataclass
class RoundResult:
    """What a finished round measured; ``weights`` (its selected trained state) only for the latest round."""

    selection: dict[str, Any]
    threshold: dict[str, Any]
    val_frame: pd.DataFrame
    predictions: dict[str, pd.DataFrame]
    metrics: dict[str, dict[str, Any]]
    fit_seconds: float
    predict_seconds: float
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def plan_rounds(proto, sources, limit: int | None, perturb) -> list[Round]:
    """Every round of ``proto`` with its splits resolved (the pre-run checks then see every split of the run)."""
    out = []
    for plan, own in round_protocols(proto):
        splits = resolve_all(own, sources, limit, perturb)
        if plan is not None:
            splits = {k: dataclasses.replace(s, name=f"r{plan.index}_{s.name}") if k in ("train", "val") else s
                      for k, s in splits.items()}
        # The first round has no previous one to continue from: it starts from the detector as built.
        init = proto.rounds.init if plan is not None and plan.index > 1 else "fresh"
        out.append(Round(plan, own, splits, init))
    return out


def all_splits(rounds: list[Round]) -> dict[str, ResolvedSplit]:
    """Every split of every round, by a key unique over the run (``train``, ``test/x``; ``r2/train`` in rounds)."""
    return {(f"r{r.index}/{k}" if r.plan is not None else k): s for r in rounds for k, s in r.splits.items()}


def record(rounds: list[Round], results: list[RoundResult]) -> list[dict[str, Any]] | None:
    """results.json's ``rounds``: per round its data, selection, threshold and timings (None without rounds)."""
    if rounds[0].plan is None:
        return None
    return [{**r.plan.summary(), "init": r.init, "train_split": r.splits["train"].name, "val_split": r.splits["val"].name,
             "selection": res.selection, "threshold": res.threshold, "fit_seconds": round(res.fit_seconds, 2),
             "predict_seconds": round(res.predict_seconds, 2)} for r, res in zip(rounds, results)]


def merged(rounds: list[Round], results: list[RoundResult]) -> tuple[dict, dict, pd.DataFrame]:
    """Every round's metrics and predictions (test names are unique over rounds), and their validation scores."""
    metrics = {k: v for res in results for k, v in res.metrics.items()}
    predictions = {k: v for res in results for k, v in res.predictions.items()}
    if rounds[0].plan is None:
        return metrics, predictions, results[0].val_frame
    frames = [res.val_frame.assign(round=r.index) for r, res in zip(rounds, results)]
    return metrics, predictions, pd.concat(frames, ignore_index=True)


def _folder(run_dir: Path) -> Path:
    return Path(run_dir) / STATE_DIR / _ROUNDS_DIR


def save_round(run_dir: Path, runner, rnd: Round, result: RoundResult, detector) -> RoundResult:
    """Keep a finished round of a temporal run for ``--resume`` (main process); returns it with its weights.

    The selected weights are written beside the record, and the previous round's are removed: a
    continued round and the final checkpoint need only the latest.
    """
    if rnd.plan is None:
        return result
    result.weights = trained_state(detector)
    if not runner.is_main:
        return result
    hint = RESUME_HINT.format(run_dir=run_dir)
    folder = make_dir(_folder(run_dir), hint)
    body = {"selection": result.selection, "threshold": result.threshold, "metrics": result.metrics,
            "fit_seconds": result.fit_seconds, "predict_seconds": result.predict_seconds}
    state = {"record": json.dumps(body, default=_plain), "val": result.val_frame.to_dict("list"),
             "predictions": {k: v.to_dict("list") for k, v in result.predictions.items()},
             "log": json.dumps(runner.log, default=_plain), "workers": dict(runner.workers_used),
             "absent": {k: sorted(v) for k, v in runner.ledger.absent.items()},
             "conversions": runner.ledger.conversions}
    write_with(folder / f"r{rnd.index}.weights.pt", lambda fh: torch.save(result.weights, fh),
               tensor_bytes(result.weights), hint)
    write_with(folder / f"r{rnd.index}.pt", lambda fh: torch.save(state, fh), None, hint)
    (folder / f"r{rnd.index - 1}.weights.pt").unlink(missing_ok=True)
    return result


def load_round(run_dir: Path, rnd: Round, runner) -> RoundResult | None:
    """The round as a resumed run finished it (runner log and ledger restored), or None if it did not."""
    path = _folder(run_dir) / f"r{rnd.index}.pt"
    if rnd.plan is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    body = json.loads(state["record"])
    runner.log[:] = json.loads(state["log"])
    runner.workers_used.update(state["workers"])
    for name, rows in state["absent"].items():
        runner.ledger.absent.setdefault(name, set()).update(rows)
    runner.ledger.conversions.update(state["conversions"])
    weights_path = path.with_name(f"r{rnd.index}.weights.pt")
    weights = torch.load(weights_path, map_location="cpu", weights_only=True) if weights_path.is_file() else None
    return RoundResult(body["selection"], body["threshold"], pd.DataFrame(state["val"]),
                       {k: pd.DataFrame(v) for k, v in state["predictions"].items()}, body["metrics"],
                       body["fit_seconds"], body["predict_seconds"], weights)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
