"""Face boxes: the square crop around a face, the crop itself, which face to keep, and when it jumps.

Boxes are ``(x0, y0, x1, y1)`` in frame pixels (floats). The crop is the square of side
``scale * max(width, height)`` centred on the box (FaceForensics++'s and DeepfakeBench's 1.3x
convention); where it reaches past the frame's edge the missing part is black, so the face stays
centred instead of being shifted.

Which face: :func:`track_choice` links the detections of the sampled frames into tracks (a detection
continues a track when it does not :func:`jumps` from the track's last box) and keeps the track with the
highest summed detector score, i.e. the face found most often and most confidently; :func:`largest`
is DeepfakeBench's rule (the largest box of each frame, whoever it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]


def area(box: Box) -> float:
    """Area of a box (0 for an empty one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Box, b: Box) -> float:
    """Area of the overlap of two boxes."""
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Box, b: Box) -> float:
    """Intersection over union (0 when both are empty)."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def centre(box: Box) -> tuple[float, float]:
    """The centre of a box."""
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def side(box: Box) -> float:
    """The box's size: the mean of its width and height."""
    return (box[2] - box[0] + box[3] - box[1]) / 2


def square(box: Box, scale: float) -> Box:
    """The square of side ``scale * max(width, height)`` centred on ``box``."""
    cx, cy = centre(box)
    half = scale * max(box[2] - box[0], box[3] - box[1]) / 2
    return cx - half, cy - half, cx + half, cy + half


def crop(frame: np.ndarray, region: Box, size: int) -> Image.Image:
    """Cut ``region`` out of an RGB frame (black outside the frame) and resize it to ``size`` x ``size``.

    Resizing uses PIL's antialiased bicubic filter on the exact (sub-pixel) region.
    """
    x0, y0, x1, y1 = region
    ix0, iy0, ix1, iy1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    padded = Image.fromarray(frame).crop((ix0, iy0, ix1, iy1))  # PIL pads with black outside the frame
    return padded.resize((size, size), Image.Resampling.BICUBIC, box=(x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0))


def largest(boxes: Sequence[Box]) -> int | None:
    """Index of the largest box, None when there is none."""
    return max(range(len(boxes)), key=lambda i: area(boxes[i])) if boxes else None


Detections = list[tuple[Box, float]]
#: What a detection the dataset's mask marks adds to its track's score: the marked face always wins.
MARKED_BONUS = 1e6


def track_choice(frames: Sequence[Detections], jump: float, forced: Sequence[int | None] | None = None) -> list[int | None]:
    """Per frame, the index of the kept detection (None: none of the kept face's track is in that frame).

    ``frames[t]`` holds frame t's ``(box, score)`` detections; ``forced[t]`` the index of one that must be
    kept (the face a manipulation mask marks). Detections are linked frame by frame, most confident first,
    each to the nearest still-open track it continues (no jump of more than ``jump`` face sizes or 2x in
    size from the track's last box), else to a new track; the track with the largest summed score wins.
    """
    forced = list(forced) if forced is not None else [None] * len(frames)
    tracks: list[dict] = []  # {"last": box, "members": {frame: index}, "score": float}
    for t, found in enumerate(frames):
        taken: set[int] = set()
        for i in sorted(range(len(found)), key=lambda i: -found[i][1]):
            box, score = found[i]
            open_ = [k for k, tr in enumerate(tracks) if k not in taken and not jumps(tr["last"], box, jump)]
            if open_:
                k = min(open_, key=lambda k: math.dist(centre(tracks[k]["last"]), centre(box)))
            else:
                tracks.append({"last": box, "members": {}, "score": 0.0})
                k = len(tracks) - 1
            taken.add(k)
            tracks[k]["last"] = box
            tracks[k]["members"][t] = i
            tracks[k]["score"] += score + (MARKED_BONUS if forced[t] == i else 0.0)
    best = max(tracks, key=lambda tr: tr["score"])["members"] if tracks else {}
    return [forced[t] if forced[t] is not None else best.get(t) for t in range(len(frames))]


def marked(boxes: Sequence[Box], mask: np.ndarray, threshold: int = 127) -> int | None:
    """Index of the box holding most of the manipulation mask's pixels, None when none holds any.

    ``mask`` is a frame of the dataset's mask video (any channel count); a pixel is marked when it
    exceeds ``threshold`` (mask videos are lossy, so their black is not exactly 0).
    """
    marks = (mask.max(axis=2) if mask.ndim == 3 else mask) > threshold
    if not boxes or not marks.any():
        return None
    h, w = marks.shape
    counts = []
    for x0, y0, x1, y1 in boxes:
        xs, ys = slice(max(0, int(x0)), max(0, min(w, math.ceil(x1)))), slice(max(0, int(y0)), max(0, min(h, math.ceil(y1))))
        counts.append(int(marks[ys, xs].sum()))
    best = max(range(len(boxes)), key=lambda i: counts[i])
    return best if counts[best] > 0 else None


def jumps(previous: Box | None, current: Box, threshold: float) -> bool:
    """True when the kept face moved more than ``threshold`` face sizes, or changed size by 2x or more.

    Either means the largest face is probably another person (or a false detection) than in the
    previous sampled frame; the frame is kept and reported.
    """
    if previous is None:
        return False
    (px, py), (cx, cy) = centre(previous), centre(current)
    size = (side(previous) + side(current)) / 2
    ratio = side(current) / side(previous) if side(previous) > 0 else math.inf
    return math.hypot(cx - px, cy - py) > threshold * size or not 0.5 < ratio < 2.0


def crop_quality(truth: Box, region: Box) -> tuple[float, float]:
    """(fraction of the true face box inside the crop, centre offset in true-box sizes): the test's measure."""
    inside = intersection(truth, region) / area(truth)
    (tx, ty), (rx, ry) = centre(truth), centre(region)
    return inside, math.hypot(tx - rx, ty - ry) / side(truth)
