"""The settings of a face extraction, checked before any video is read."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """How faces are extracted; every field is recorded in the report, and a resumed run must match."""

    frames: int = 32  # evenly spaced frames per video (the protocols' frames_per_group)
    size: int = 256  # side of the written square crops, in pixels
    scale: float = 1.3  # crop side / larger side of the face box
    detect_size: int = 640  # longer side of the frame the detector sees (0: full resolution)
    upsample: int = 1  # dlib's pyramid up-sampling (1 finds faces from about 40 px at detection scale)
    min_score: float = 0.0  # SVM score dlib needs to return a detection (its default)
    # A detection below this score is never cropped: a frame with only such detections is reported faceless. 0.3 lies
    # between dlib's false detections on the bundled photos (at most 0.12, the astronaut's chest) and the
    # test clips' faces scanned with up-sampling (0.77 and more).
    score_floor: float = 0.3
    # "track": the face the video's most confident continuous track follows; "largest": DeepfakeBench's rule.
    choose: str = "track"
    jump: float = 1.0  # a kept face whose centre moves more than this many face sizes is reported
    landmarks: int = 0  # 0 (none), 5 or 68 points

    def check(self) -> None:
        """Raise ConfigError for a value out of range, naming the flag."""
        rules = [("frames", self.frames >= 1, "at least 1"), ("size", self.size >= 8, "at least 8"),
                 ("scale", self.scale >= 1.0, "at least 1.0 (the crop holds the whole box)"),
                 ("detect-size", self.detect_size == 0 or self.detect_size >= 64, "0 or at least 64"),
                 ("upsample", 0 <= self.upsample <= 3, "0 to 3"), ("jump", self.jump > 0, "positive"),
                 ("landmarks", self.landmarks in (0, 5, 68), "0, 5 or 68"),
                 ("score-floor", math.isfinite(self.score_floor), "a finite number"),
                 ("choose", self.choose in ("track", "largest"), "track or largest")]
        for flag, ok, rule in rules:
            if not ok:
                raise ConfigError(f"--{flag} {getattr(self, flag.replace('-', '_'))} is invalid; it must be {rule}.")
