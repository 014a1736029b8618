"""Which face ``bench data faces`` keeps: the face by detector confidence and continuity along the video, a
frame with only low-score detections reported faceless, DeepfakeBench's largest-box rule kept as a setting.

The clip shows the astronaut's face on the left and, on the right, a larger, blurred copy that dlib still
detects, with a lower score (0.3–0.9 against 0.7–1.1 for the face: higher than the face's in some frames).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bench.data.faces import crop as geometry
from bench.data.faces.report import REPORT_NAME
from bench.data.faces.run import extract_faces
from bench.data.faces.settings import Settings
from bench.data.faces.synthetic import BACKGROUND, render, write_video
from bench.errors import ConfigError

HIDDEN = 5  # the frame where the real face is covered: only the distractor is there


def distractor_clip(n: int = 8) -> tuple[list[np.ndarray], list, list]:
    frames, faces, distractors = [], [], []
    for t in range(n):
        frame, (face, distractor) = render(320, 160, [(70 + 2 * t, 80, 64), (240 - t, 78, 100)])
        image = Image.fromarray(frame)
        image.paste(image.crop((160, 0, 320, 160)).filter(ImageFilter.GaussianBlur(2.0)), (160, 0))
        if t == HIDDEN:
            image.paste(Image.new("RGB", (160, 160), BACKGROUND), (0, 0))
        frames.append(np.asarray(image))
        faces.append(None if t == HIDDEN else face)
        distractors.append(distractor)
    return frames, faces, distractors


def extract(tmp_path: Path, **settings) -> tuple[dict, dict]:
    root, out = tmp_path / "videos", tmp_path / f"UADFV-{len(settings)}"
    frames, _, _ = distractor_clip()
    if not (root / "real/two.mp4").is_file():
        write_video(root / "real/two.mp4", frames)
    extract_faces("uadfv", root, out, Settings(frames=8, **settings), workers=0, progress=False)
    report = json.loads((out / REPORT_NAME).read_text())
    return report, report["videos"][0]


def kept(record: dict, boxes: list) -> int:
    return sum(boxes[i] is not None and geometry.iou(tuple(box), boxes[i]) > 0.3 for i, *box, _ in record["boxes"])


def test_a_larger_low_score_distractor_is_never_cropped(tmp_path):
    _, faces, distractors = distractor_clip()
    report, record = extract(tmp_path)
    assert kept(record, distractors) == 0
    assert kept(record, faces) == record["written"] == 7
    assert record["off_track"] == [HIDDEN] and HIDDEN not in record["no_face"]  # detections, none of the face
    choice = report["face_choice"]
    assert choice["rule"] == "track" and choice["score_floor"] == 0.3 and "confidence" in choice["description"]
    assert report["summary"]["frames_off_track"] == 1


def test_deepfakebench_largest_box_rule_is_a_setting_and_crops_the_distractor(tmp_path):
    _, _, distractors = distractor_clip()
    report, record = extract(tmp_path, choose="largest", score_floor=0.0)  # DeepfakeBench keeps every detection
    assert report["face_choice"]["rule"] == "largest" and kept(record, distractors) >= 7


def test_a_frame_with_only_detections_below_the_floor_is_a_reported_faceless_frame(tmp_path):
    report, record = extract(tmp_path, score_floor=2.5)  # above every score in the clip
    assert record["written"] == 0 and record["status"] == "no_face"
    assert record["below_floor"] == record["no_face"] == list(range(8))
    assert report["summary"]["frames_below_floor"] == 8


def test_tracks_follow_continuity_and_confidence_over_the_whole_video():
    face = [((10.0, 10, 30, 30), 0.9), ((50.0, 10, 80, 40), 1.0)]  # the second box scores higher here only
    later = [((12.0, 10, 32, 30), 0.9), ((52.0, 10, 82, 40), 0.2)]
    chosen = geometry.track_choice([face, later, later, [], [later[1]]], jump=1.0)
    assert chosen == [0, 0, 0, None, None]  # the first track sums 2.7, the second 1.6
    assert geometry.track_choice([face, later], jump=1.0, forced=[1, None]) == [1, 1]  # a mask decides


def test_bad_choice_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--choose"):
        Settings(choose="biggest").check()
    with pytest.raises(ConfigError, match="--score-floor"):
        Settings(score_floor=float("nan")).check()
