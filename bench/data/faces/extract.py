"""One video in, face crops out: sample frames, detect, keep one face, crop, write, record what was dropped.

Two passes: every sampled frame's detections at or above the score floor are cropped first, then the
face to keep is chosen over the whole video (``Settings.choose``: the most confident continuous track, or
DeepfakeBench's largest box per frame), and only its crops are written.

:func:`process_video` never raises for a bad video: an unreadable file, frames without a face,
frames that cannot be decoded and frames where the kept face jumps are all written to the
video's record, which the caller stores as the video's completion marker. Frames are written
to a private temporary folder and moved into place only when the video is finished, so an
interrupted run never leaves a half-written video where the indexer would see it.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.faces import crop as geometry
from bench.data.faces.detect import FaceDetector, LandmarkPredictor
from bench.data.faces.layouts import Job
from bench.data.faces.settings import Settings
from bench.data.faces.video import VideoError, VideoInfo, probe, read_frames, sample_indices

#: Hidden folder in the output that holds completion markers and temporary frames.
STATE_DIR = ".faces"
#: zlib level of the written PNGs: 1 is ~5x faster to write than PIL's default 6 for ~18% larger files.
PNG_LEVEL = 1


class Tools:
    """The detector (and landmark predictor) of one worker process, built once per process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.detector = FaceDetector(settings.detect_size, settings.upsample, settings.min_score, settings.score_floor)
        self.landmarks = LandmarkPredictor(settings.landmarks) if settings.landmarks else None


def new_record(job: Job) -> dict[str, Any]:
    """The record of a video before any work (see ``report.py`` for the fields)."""
    return {"video": job.video, "frames_dir": job.frames, "mask": job.mask, "status": "ok", "error": None,
            "n_frames": 0, "sampled": 0, "written": 0, "short": False, "no_face": [], "below_floor": [],
            "off_track": [], "unreadable": [], "jumps": [], "mask_unused": [], "boxes": [], "seconds": 0.0}


def _masks(video_root: Path, job: Job, indices: list[int], record: dict) -> Iterator[np.ndarray | None]:
    """The mask video's frames at ``indices``, one at a time (None where missing); a broken mask video is
    recorded in ``mask_error``."""
    if job.mask is not None:
        try:
            info = probe(video_root / job.mask)
        except VideoError as err:
            record["mask_error"] = str(err)
        else:
            return (frame for _, frame in read_frames(info, indices))
    return repeat(None)


def _candidates(info: VideoInfo, indices: list[int], masks: Iterator, tools: Tools, record: dict) -> list[dict]:
    """Pass 1: every sampled frame's detections at or above the score floor, each already cropped (and its
    landmarks read), and the one the mask marks; frames without any are recorded, nothing is written."""
    s = tools.settings
    frames = []
    for (index, frame), mask in zip(read_frames(info, indices), masks):
        if frame is None:
            record["unreadable"].append(index)
            continue
        found = tools.detector(frame)
        above = [(box, score) for box, score in found if score >= s.score_floor]
        forced = geometry.marked([box for box, _ in above], mask) if mask is not None else None
        if mask is not None and forced is None and above:
            found = tools.detector(frame, thorough=True)  # the marked face may be a smaller one
            above = [(box, score) for box, score in found if score >= s.score_floor]
            forced = geometry.marked([box for box, _ in above], mask)
        if record["mask"] is not None and forced is None and above:
            record["mask_unused"].append(index)  # no mask frame, or it marks none of the faces: the rule decides
        if not above:
            record["no_face"].append(index)
            if found:
                record["below_floor"].append(index)  # only detections too weak to be a face
            continue
        crops, points = [], []
        for box, _ in above:
            region = geometry.square(box, s.scale)
            crops.append(geometry.crop(frame, region, s.size))
            if tools.landmarks is not None:
                # Stored in the crop's pixels, like DeepfakeBench's landmarks of its aligned crops.
                raw = tools.landmarks(frame, box)
                points.append((raw - np.array(region[:2], dtype=np.float32)) * (s.size / (region[2] - region[0])))
        frames.append({"index": index, "found": above, "forced": forced, "crops": crops, "points": points})
    return frames


def _faces(info: VideoInfo, indices: list[int], masks: Iterator, tools: Tools, tmp: Path, record: dict) -> None:
    """Detect every sampled frame, choose the face (``settings.choose``), crop and write it into ``tmp``."""
    s = tools.settings
    width = max(3, len(str(info.n_frames - 1)))
    frames = _candidates(info, indices, masks, tools, record)
    if s.choose == "largest":  # DeepfakeBench's rule, frame by frame
        chosen = [f["forced"] if f["forced"] is not None else geometry.largest([b for b, _ in f["found"]])
                  for f in frames]
    else:
        chosen = geometry.track_choice([f["found"] for f in frames], s.jump, [f["forced"] for f in frames])
    previous = None
    for f, pick in zip(frames, chosen):
        if pick is None:
            record["off_track"].append(f["index"])  # faces, none of them the one the video follows
            continue
        box, score = f["found"][pick]
        if geometry.jumps(previous, box, s.jump):
            record["jumps"].append(f["index"])
        previous = box
        name = f"{f['index']:0{width}d}"
        f["crops"][pick].save(tmp / "frames" / f"{name}.png", compress_level=PNG_LEVEL)
        if tools.landmarks is not None:
            np.save(tmp / "landmarks" / f"{name}.npy", f["points"][pick].astype(np.float32))
        record["boxes"].append([f["index"], *(round(v, 1) for v in box), round(score, 3)])
        record["written"] += 1


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished folder into place, replacing a stale one left by an interrupted run."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)


def process_video(job: Job, video_root: Path, out: Path, tools: Tools) -> dict[str, Any]:
    """Extract one video's face crops into ``out`` and return its record (see ``report.py`` for the fields)."""
    start = time.perf_counter()
    record = new_record(job)
    tmp = out / STATE_DIR / "tmp" / uuid.uuid4().hex
    try:
        info = probe(video_root / job.video)
        indices = sample_indices(info.n_frames, tools.settings.frames)
        record.update(n_frames=info.n_frames, sampled=len(indices), short=info.n_frames < tools.settings.frames)
        masks = _masks(video_root, job, indices, record)
        (tmp / "frames").mkdir(parents=True)
        if tools.landmarks is not None:
            (tmp / "landmarks").mkdir()
        _faces(info, indices, masks, tools, tmp, record)
        if record["written"]:
            _publish(tmp / "frames", out / job.frames)
            if tools.landmarks is not None:
                _publish(tmp / "landmarks", out / job.landmarks)
        elif len(record["unreadable"]) == len(indices):
            raise VideoError(f"{video_root / job.video}: none of its {len(indices)} sampled frames can be decoded; "
                             "it is corrupt or truncated: download it again.")
        else:
            record["status"] = "no_face"
            shutil.rmtree(out / job.frames, ignore_errors=True)  # a stale folder from an interrupted run
    except VideoError as err:
        record.update(status="failed", error=str(err))
    except Exception as err:  # noqa: BLE001 - one odd file must not stop a dataset-sized run; the report names it
        record.update(status="failed", error=f"{video_root / job.video}: {type(err).__name__}: {err}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record

