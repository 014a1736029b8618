"""The face detector (dlib's frontal face detector) and the optional landmark predictor.

dlib's frontal face detector is a HOG + linear-SVM sliding window over an image pyramid; its
parameters are compiled into dlib, so nothing is downloaded. It comes from the ``dlib-bin``
wheel (Boost Software License), a dependency of forgery-bench. It was chosen by measurement
(``benchmarks/faces_detectors.py``): on the astronaut clip it found the face in every frame that
shows it with the best box overlap and no false detection, faster than dlib's CNN detector and
without the OpenCV < 5 pin Haar cascades need; DeepfakeBench's preprocessing uses it too.

Landmarks are optional: dlib's shape predictors ship in ``face-recognition-models`` (not a
dependency, 100 MB). Its 5-point model is public domain; its 68-point model is trained on
iBUG 300-W, whose licence excludes commercial use.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.errors import ConfigError

Box = tuple[float, float, float, float]

DETECTOR = {"name": "dlib frontal face detector (HOG + linear SVM)", "package": "dlib-bin",
            "licence": "Boost Software License 1.0", "weights": "none (built into dlib)"}
LANDMARK_MODELS = {
    5: ("pose_predictor_five_point_model_location", "public domain (dlib-models, Davis King)"),
    68: ("pose_predictor_model_location", ("non-commercial: trained on iBUG 300-W, whose licence excludes "
                                          "commercial use")),
}


def _dlib():
    try:
        import dlib
    except ImportError:
        raise ConfigError("bench data faces needs dlib; install forgery-bench with its dependencies "
                          "(pip install -e .), which brings the dlib-bin wheel.") from None
    return dlib


class FaceDetector:
    """Finds faces in an RGB frame: dlib's HOG detector on the frame shrunk to ``detect_size`` pixels.

    ``detect_size`` caps the longer side the detector sees (0: full resolution); ``upsample`` is
    the most pyramid up-sampling used (1 finds faces down to about 40 px at the detection scale,
    0 down to about 80 px); ``min_score`` is the SVM score dlib needs to return a detection (its
    default 0). The frame is scanned without up-sampling first and up-sampled only when that finds no
    face scoring ``floor`` or more (extraction crops nothing below it): up-sampling adds finer pyramid
    levels (smaller faces) but costs 4x per level, and a face of a usable size is found by the coarse scan.
    """

    def __init__(self, detect_size: int = 640, upsample: int = 1, min_score: float = 0.0, floor: float = 0.0):
        dlib = _dlib()
        self._hog = dlib.get_frontal_face_detector()
        self.detect_size, self.upsample, self.min_score, self.floor = detect_size, upsample, min_score, floor

    @staticmethod
    def info() -> dict[str, str]:
        """Detector name, package, version and licence (for the extraction report)."""
        return {**DETECTOR, "version": _dlib().__version__}

    def __call__(self, frame: np.ndarray, thorough: bool = False) -> list[tuple[Box, float]]:
        """``(box, score)`` of the faces, boxes in the frame's pixels; ``thorough`` scans at ``upsample`` at once
        (every face, small ones too, not only those the first scan that finds any returns)."""
        height, width = frame.shape[:2]
        factor = min(1.0, self.detect_size / max(height, width)) if self.detect_size else 1.0
        image = frame
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        found: list[tuple[Box, float]] = []
        for upsample in [self.upsample] if thorough else range(self.upsample + 1):
            rects, scores, _ = self._hog.run(image, upsample, self.min_score)
            # A finer scan that finds nothing keeps the coarser one's detections (reported below the floor).
            found = [((r.left() / factor, r.top() / factor, (r.right() + 1) / factor, (r.bottom() + 1) / factor),
                      float(s)) for r, s in zip(rects, scores)] or found
            if any(s >= self.floor for s in scores):
                break
        return found


class LandmarkPredictor:
    """dlib's 5- or 68-point shape predictor, weights from the ``face-recognition-models`` package."""

    def __init__(self, points: int):
        if points not in LANDMARK_MODELS:
            raise ConfigError(f"--landmarks {points} is not available; choose 5 or 68 (or 0 for none).")
        try:
            import face_recognition_models
        except ImportError:
            raise ConfigError(f"--landmarks {points} needs dlib's shape predictor from the face-recognition-models "
                              "package; pip install 'forgery-bench[landmarks]' (or pip install "
                              "face-recognition-models), or run without --landmarks.") from None
        location, self.licence = LANDMARK_MODELS[points]
        self.points = points
        self._predictor = _dlib().shape_predictor(getattr(face_recognition_models, location)())

    def info(self) -> dict[str, str | int]:
        """Model, point count and licence (for the extraction report)."""
        return {"name": f"dlib shape predictor, {self.points} points", "package": "face-recognition-models",
                "points": self.points, "licence": self.licence}

    def __call__(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """``(points, 2)`` float32 landmark coordinates in the frame's pixels."""
        dlib = _dlib()
        rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
        shape = self._predictor(frame, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
