"""A run's predictions read back and checked against its results: the same images and the same scores.

A predictions file is trusted for intervals only when it is the one its results were computed from:
its ``seed``/``run_id`` columns (when present) name the run, every test set has the stored class
counts, and its scores give every stored metric again (computed by the leaderboard's
:func:`bench.leaderboard.weighted.weighted_metrics` at unit weights, which equals
:func:`bench.metrics.compute_metrics`, a test checks it, at a fraction of the cost).
Runs write scores with 6 significant digits (``%.6g``), so a recomputed metric may differ from the
stored one by float rounding (relative :data:`REL_TOL`) and by what that rounding can do to the
ranking: it never reorders two images, but it can tie a real and a fake (and, for ``video_auc``,
move two video means past each other by at most ``1e-5 x max |score|``), and for AP it can also tie
two fakes (each fake's precision is read at the end of its tie block). The share of each class
caught in such ties bounds how far any of the metrics can move, so it is added to the tolerance;
other runs' scores differ by far more.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.leaderboard.collect import LeaderboardError, run_predictions_text
from bench.leaderboard.temporal import thresholds_by_test
from bench.leaderboard.weighted import weighted_metrics
from bench.metrics import METRIC_NAMES, check_two_classes, is_count

#: Relative tolerance of a recomputed metric (float summation order), before rounding ties are allowed for.
REL_TOL = 1e-6
_NEEDED = ["test_set", "source", "group", "label", "score"]
_TEXT = {"id": str, "group": str, "source": str, "subset": str, "test_set": str, "run_id": str}


def read_predictions_file(path: Path, result: dict[str, Any]) -> pd.DataFrame:
    """Read a combined predictions file (or a run's ``predictions/`` folder) and check it against ``result``.

    Rows of images the run skipped (``--skip-bad-images``) keep an empty, i.e. NaN, ``score``.
    """
    text = run_predictions_text(path, list(result["protocol"]["tests"])) if path.is_dir() else None
    frame = predictions_frame(io.StringIO(text) if text is not None else path, path)
    check_predictions(frame, result, path)
    return frame


def predictions_frame(data: Any, where: Path | str) -> pd.DataFrame:
    """Parse predictions CSV (a path, or a text buffer) with text ids and a float ``score`` (NaN where empty)."""
    try:
        frame = pd.read_csv(data, dtype=_TEXT)
    except (OSError, ValueError, EOFError) as exc:
        raise LeaderboardError(f"{where} is not a readable predictions file ({exc}); restore it.") from exc
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise LeaderboardError(f"{where} has no column {missing[0]!r}; predictions need {', '.join(_NEEDED)}.")
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame


def check_predictions(frame: pd.DataFrame, result: dict[str, Any], where: Path | str) -> None:
    """Refuse (one sentence) predictions that are not the ones ``result``'s metrics were computed from."""
    _check_run_columns(frame, result, where)
    tests = list(result["protocol"]["tests"])
    foreign = sorted(set(frame["test_set"]) - set(tests))
    if foreign:
        raise LeaderboardError(f"{where} has scores for test set {foreign[0]!r}, which protocol "
                               f"{result['protocol']['name']} does not list; the file belongs to another protocol.")
    kept = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
    found = kept.groupby(["test_set", "label"]).size().to_dict()
    for test in tests:
        counts = (int(found.get((test, 0), 0)), int(found.get((test, 1), 0)))
        stored = result["metrics"].get(test, {})
        if counts != (stored.get("n_real"), stored.get("n_fake")):
            raise LeaderboardError(
                f"{where} has {counts[0]} real and {counts[1]} fake scores for {test}, but its results have "
                f"{stored.get('n_real')} and {stored.get('n_fake')}; the file belongs to another run."
            )
    thresholds = thresholds_by_test(result)  # schema 3: chosen on validation (in a temporal run, per round)
    for test, part in kept.groupby("test_set", sort=False):
        _check_metrics(part, result["metrics"][test], f"{where}", str(test), thresholds.get(str(test)))


def _check_run_columns(frame: pd.DataFrame, result: dict[str, Any], where: Path | str) -> None:
    for column in ("seed", "run_id"):
        if column not in frame.columns:
            continue
        want = result[column]
        values = frame[column] if column == "run_id" else pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][values != want]
        if len(bad):
            shown = bad.iloc[0] if isinstance(bad.iloc[0], str) else bad.iloc[0].item()
            raise LeaderboardError(f"{where} has {column} {shown!r} in its rows, but its results are "
                                   f"{column} {want!r}; the file belongs to another run, so submit the run's own "
                                   "predictions/ folder.")


def _check_metrics(part: pd.DataFrame, stored: dict[str, Any], where: str, test: str,
                   threshold: float | None = None) -> None:
    names = [m for m in METRIC_NAMES if m in stored]
    labels, scores = part["label"].to_numpy(), part["score"].to_numpy(dtype=float)
    videos = (part["source"].astype(str) + ":" + part["group"].astype(str)).to_numpy()
    try:
        check_two_classes(labels, f"{where} ({test})")
    except BenchError as err:
        raise LeaderboardError(f"{where}: the scores of {test} give no metrics ({err}); restore the file "
                               "from its run.") from None
    if "acc_val_thr" in names and threshold is None:
        raise LeaderboardError(f"{where}: its results store acc_val_thr for {test} but no validation threshold "
                               "(threshold.value); restore the results file from its run.")
    # The leaderboard's metrics at unit weights: equal to bench.metrics (tested), without its per-call overhead.
    ones = np.ones((1, len(scores)), dtype=np.int32)
    got = {k: float(v[0]) for k, v in weighted_metrics(scores, labels, ones, names, videos=videos,
                                                         val_threshold=threshold).items()}
    got.update(n_real=int(np.count_nonzero(labels == 0)), n_fake=int(np.count_nonzero(labels == 1)))
    if "video_auc" in names:
        got["n_videos"] = len(np.unique(videos))
    slack: dict[str, float] = {}
    for key, value in got.items():
        if key not in stored:
            continue
        want = stored[key]
        if is_count(key):
            same = int(value) == int(want)
        else:
            tol = max(REL_TOL * abs(float(want)), 1e-9)
            same = math.isclose(value, want, rel_tol=0, abs_tol=tol)
            if not same:  # only now pay for the bound on what rounding to %.6g can do
                kind = "video" if key == "video_auc" else "ap" if key == "ap" else "image"
                if kind not in slack:
                    slack[kind] = rounding_slack(labels, scores, videos if kind == "video" else None,
                                                 fakes_tied=kind == "ap")
                same = math.isclose(value, want, rel_tol=0, abs_tol=tol + slack[kind])
        if not same:
            raise LeaderboardError(
                f"{where} gives {key} = {value:.6g} on {test} but its results store {float(want):.6g}; these "
                "are not the scores the results were computed from, so submit the run's own predictions/ "
                "folder (or rerun the run)."
            )


def rounding_slack(labels: np.ndarray, scores: np.ndarray, videos: np.ndarray | None = None,
                   fakes_tied: bool = False) -> float:
    """The largest share of a class's images (or videos) that rounding scores to 6 digits may have reordered.

    Image level: images tied with an image of the other class (rounding is monotone, so only ties
    it created can hide another order). Video level (``videos`` given): videos whose mean score lies
    within ``1e-5 x max |score|`` of a video of the other class. ``fakes_tied`` (for AP): also the
    share of fakes tied with any other image, since AP reads a fake's precision at the end of its tie
    block; a fake in no tie keeps its precision exactly, and each tied one moves AP by at most 1/#fakes.
    """
    labels = np.asarray(labels).astype(int)
    eps = 0.0
    if videos is not None:
        _, first, inverse = np.unique(videos, return_index=True, return_inverse=True)
        eps = 1e-5 * float(np.max(np.abs(scores), initial=0.0))
        labels, scores = labels[first], np.bincount(inverse, weights=scores) / np.bincount(inverse)
    shares = []
    for cls in (0, 1):
        mine, other = scores[labels == cls], np.sort(scores[labels != cls])
        if not len(mine) or not len(other):
            continue
        i = np.searchsorted(other, mine - eps, side="left")
        near = (i < len(other)) & (other[np.minimum(i, len(other) - 1)] <= mine + eps)
        shares.append(float(near.mean()))
    if fakes_tied and (labels == 1).any():
        _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
        shares.append(float((counts[inverse][labels == 1] > 1).mean()))
    return max(shares, default=0.0)
