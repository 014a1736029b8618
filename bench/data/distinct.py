"""Which test rows show the same image, and which are drawn together: the counts behind a table's n.

A row of a test set is ``(source, id, group, label)`` (a predictions file, or a resolved split's table).

- **Same image.** On a ``synthetic`` source (ids ``split/subset/label/index``, subset ``generator[@domain]``,
  see :mod:`bench.data.sources.synthetic`) a real's pixels depend on (split, index, domain) and a
  fake's on (split, index, generator, domain): the reals of the test sets of one domain are one set
  of images, whatever generator the test set is about. On other sources a row is the image
  ``(source, id)``. A ``perturb`` (test-level, of the split, or ``fake_perturb`` for fakes) makes other
  pixels, so it is part of the identity (:func:`pixel_context`).
- **Same unit** (what the leaderboard's bootstrap resamples): on a synthetic source the k-th real
  and the k-th fake of a split start from one crop in every subset, so the unit is (source, split,
  label, index); elsewhere it is ``(source, group)``, an image or a whole video.

Counts per class over several test sets (a group) count each image once, so a group of 16 test
sets that share their 100 reals has n_real = 100, not 1,600. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

SYNTHETIC = "synthetic"


def synthetic_sources(sources: Mapping[str, Any] | None) -> set[str]:
    """Names of the sources of type ``synthetic`` in a protocol's ``sources`` block (dicts or models)."""
    out = set()
    for name, spec in (sources or {}).items():
        kind = spec.get("type") if isinstance(spec, Mapping) else getattr(spec, "type", None)
        if kind == SYNTHETIC:
            out.add(str(name))
    return out


def _parts(frame: pd.DataFrame, synthetic: set[str]) -> list[list[str] | None]:
    """Per row, the parts (split, subset, label, index) of a well-formed synthetic id, else None."""
    out: list[list[str] | None] = []
    for source, item, label in zip(frame["source"].astype(str).tolist(), frame["id"].astype(str).tolist(),
                                   frame["label"].astype(int).tolist()):
        parts = item.split("/") if source in synthetic else []
        out.append(parts if len(parts) == 4 and parts[2] == str(label) else None)
    return out


def image_keys(frame: pd.DataFrame, synthetic: set[str], context: Mapping[int, str] | None = None) -> np.ndarray:
    """One key per row; rows with equal keys show the same pixels (``context``: :func:`pixel_context`)."""
    keys = []
    for source, item, label, parts in zip(frame["source"].astype(str).tolist(), frame["id"].astype(str).tolist(),
                                          frame["label"].astype(int).tolist(), _parts(frame, synthetic)):
        if parts is None:
            key = f"{source}:{item}"
        elif label == 0:  # a real does not depend on the generator its test set is about
            key = f"{source}:{parts[0]}/0/{parts[3]}@{parts[1].partition('@')[2]}"
        else:
            key = f"{source}:{parts[0]}/1/{parts[3]}/{parts[1]}"
        text = (context or {}).get(label)
        keys.append(f"{key}|{text}" if text else key)
    return np.array(keys, dtype=object)


def unit_keys(frame: pd.DataFrame, synthetic: set[str]) -> np.ndarray:
    """One key per row: its resampling unit (a synthetic crop index, else the image or video)."""
    return np.array([f"{source}:{group}" if parts is None else f"{source}:{parts[0]}/{parts[2]}/{parts[3]}"
                     for source, group, parts in zip(frame["source"].astype(str).tolist(),
                                                     frame["group"].astype(str).tolist(), _parts(frame, synthetic))],
                    dtype=object)


def synthetic_rows(frame: pd.DataFrame, synthetic: set[str]) -> np.ndarray:
    """Which rows carry a well-formed id of a synthetic source (``split/subset/label/index``)."""
    return np.array([parts is not None for parts in _parts(frame, synthetic)], dtype=bool)


def has_videos(frame: pd.DataFrame) -> bool:
    """Whether some row is a frame of a video (its ``group`` is not its own ``id``)."""
    return bool((frame["group"].astype(str) != frame["id"].astype(str)).any())


def distinct_counts(frames: Iterable[tuple[pd.DataFrame, Mapping[int, str]]], synthetic: set[str]) -> dict[str, int]:
    """``n_real``, ``n_fake`` (distinct images per class) and, with frames of videos, ``n_videos``.

    ``frames``: ``(rows of one test set, its pixel_context)`` for every member test set; rows
    without a score (skipped images) should be left out by the caller.
    """
    seen: dict[int, set[str]] = {0: set(), 1: set()}
    videos: set[str] = set()
    any_video = False
    for frame, context in frames:
        labels = frame["label"].astype(int).to_numpy()
        keys = image_keys(frame, synthetic, context)
        for cls in (0, 1):
            seen[cls].update(keys[labels == cls].tolist())
        if has_videos(frame):
            any_video = True
            names = (frame["source"].astype(str) + ":" + frame["group"].astype(str)).to_numpy(dtype=object)
            for cls, text in (context or {}).items():
                names[labels == cls] = names[labels == cls] + f"|{text}"
            videos.update(names.tolist())
    out = {"n_real": len(seen[0]), "n_fake": len(seen[1])}
    if any_video:
        out["n_videos"] = len(videos)
    return out


def pixel_context(spec: Any) -> dict[int, str]:
    """``{0: text, 1: text}``: every degradation a test set applies to its reals and to its fakes, as text.

    ``spec`` is the test's entry of a protocol (a dict of its JSON, or the model): a split (``perturb``,
    ``fake_perturb``) or a paired test (its own ``perturb`` and each side's). Empty text: none.
    """
    if hasattr(spec, "model_dump"):
        spec = spec.model_dump(mode="json")
    spec = dict(spec or {})
    shared = [spec.get("perturb")]
    if "real" in spec and "fake" in spec:
        real = [*shared, (spec["real"] or {}).get("perturb")]
        fake = [*shared, (spec["fake"] or {}).get("perturb"), (spec["fake"] or {}).get("fake_perturb")]
    else:
        real, fake = shared, [*shared, spec.get("fake_perturb")]
    return {0: _ops_text(real), 1: _ops_text(fake)}


def _ops_text(perturbs: list[Any]) -> str:
    parts = []
    for perturb in perturbs:
        items = {k: v for k, v in dict(perturb or {}).items() if v is not None}
        parts.append(",".join(f"{k}={items[k]}" for k in sorted(items)))
    return ";".join(parts) if any(parts) else ""
