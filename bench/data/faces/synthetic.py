"""Test clips with a real face at known positions: scikit-image's ``astronaut`` photo, moved and scaled.

The face box of the still photo was found once (by running the detectors on the full-resolution
photo and checking the box by eye on a saved PNG: hairline to chin, cheek to cheek) and is moved
with the same affine transform that renders each frame, so every frame's true box is known
exactly. Used by the tests and by ``benchmarks/faces_detectors.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: The face in ``skimage.data.astronaut()`` (512 x 512): x0, y0, x1, y1 in pixels.
ASTRONAUT_FACE = (178.0, 78.0, 272.0, 178.0)
#: A region of the photo with no face (helmet and suit), shown in "face out of view" frames.
NO_FACE_REGION = (300.0, 300.0)
BACKGROUND = (128, 128, 128)

Box = tuple[float, float, float, float]


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _face_centre() -> tuple[float, float]:
    x0, y0, x1, y1 = ASTRONAUT_FACE
    return (x0 + x1) / 2, (y0 + y1) / 2


def render(width: int, height: int, faces: Sequence[tuple[float, float, float]]) -> tuple[np.ndarray, list[Box]]:
    """One RGB frame showing the astronaut ``len(faces)`` times, side by side, and the true face boxes.

    Each ``(cx, cy, side)`` puts a face of width ``side`` pixels centred at ``(cx, cy)``; the frame
    is cut into equal vertical strips, strip ``i`` rendered with face ``i``'s transform, so the
    caller keeps each face inside its own strip.
    """
    photo = _astronaut()
    fx, fy = _face_centre()
    face_width = ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0]
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    boxes = []
    strip = width / max(len(faces), 1)
    for i, (cx, cy, side) in enumerate(faces):
        s = side / face_width
        # Output pixel p shows photo pixel (p - c) / s + f: PIL wants that inverse map.
        view = photo.transform((width, height), Image.Transform.AFFINE,
                               (1 / s, 0, fx - cx / s, 0, 1 / s, fy - cy / s),
                               resample=Image.Resampling.BILINEAR, fillcolor=BACKGROUND)
        left, right = round(i * strip), round((i + 1) * strip)
        canvas.paste(view.crop((left, 0, right, height)), (left, 0))
        x0, y0, x1, y1 = ASTRONAUT_FACE
        boxes.append(((x0 - fx) * s + cx, (y0 - fy) * s + cy, (x1 - fx) * s + cx, (y1 - fy) * s + cy))
    return np.asarray(canvas), boxes


def astronaut_clip(n_frames: int = 40, size: int = 128, sides: tuple[float, float] = (56.0, 80.0),
                   hidden: Sequence[int] = (), phase: float = 0.0) -> tuple[list[np.ndarray], list[Box | None]]:
    """Frames of the face moving on a loop and growing/shrinking between ``sides``, and their true boxes.

    Frames listed in ``hidden`` show a faceless part of the photo instead (true box None); ``phase``
    (in turns) starts the loop elsewhere, so two clips differ.
    """
    frames, boxes = [], []
    for t in range(n_frames):
        angle = 2 * math.pi * (t / max(n_frames, 1) + phase)
        side = sides[0] + (sides[1] - sides[0]) * (0.5 - 0.5 * math.cos(angle))
        room = (size - side * 1.1) / 2  # keep the whole face in view
        cx = size / 2 + room * math.sin(angle)
        cy = size / 2 + room * math.sin(2 * angle) * 0.8
        if t in hidden:
            # Put the face centre where the photo's faceless region lands on the frame's corner.
            s = side / (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
            fx, fy = _face_centre()
            cx, cy = (fx - NO_FACE_REGION[0]) * s, (fy - NO_FACE_REGION[1]) * s
        frame, (box,) = render(size, size, [(cx, cy, side)])
        frames.append(frame)
        boxes.append(None if t in hidden else box)
    return frames, boxes


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 25, codec: str = "libx264",
                keyint: int | None = None, options: dict[str, str] | None = None) -> Path:
    """Encode RGB frames (all the same even size) as a video file with PyAV; returns the path.

    ``keyint`` is the keyframe interval (default: the encoder's, 250 for libx264); ``options`` are
    further encoder options, e.g. ``{"bf": "2"}`` for B-frames. The container follows the suffix.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        settings = {**({"g": str(keyint)} if keyint else {}), **(options or {})}
        stream = container.add_stream(codec, rate=fps, options=settings or None)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
