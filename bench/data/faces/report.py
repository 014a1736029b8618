"""The extraction report: per-video completion markers and the ``faces_report.json`` built from them.

Each finished video gets a marker ``OUT/.faces/done/<video path>.json`` holding its record; it is
written under a temporary name and renamed, so a marker exists only for a finished video, and a
resumed run skips exactly those. ``OUT/faces_report.json`` gathers every marker with the tool,
detector, video library and settings, and counts everything that was dropped::

    {"format": "forgery-bench faces report", "version": 3, "layout": "ffpp", "video_root": "...",
     "planned": 5000, "detector": {"name", "package", "version", "licence", "weights"},
     "landmarks": null | {...}, "video_library": {"name", "package", "version", "ffmpeg"}, "settings": {...},
     "face_choice": {"rule": "track" | "largest", "score_floor": 0.3, "description": "..."},
     "summary": {"videos", "ok", "failed", "no_face", "short", "frames_written", "frames_no_face",
                 "frames_below_floor", "frames_off_track", "frames_unreadable", "face_jumps", "mask_unused",
                 "pending"},
     "pending": [video, ...],
     "videos": [{"video", "frames_dir", "mask", "status": "ok" | "failed" | "no_face", "error",
                 "n_frames", "sampled", "written", "short", "no_face": [frame, ...], "below_floor": [...],
                 "off_track": [...], "unreadable": [...], "jumps": [...], "mask_unused": [...],
                 "boxes": [[frame, x0, y0, x1, y1, score], ...], "seconds"[, "mask_error"]}, ...]}

``planned`` counts the videos of the layout found under the video root; ``videos`` lists those
finished (ok, failed or without a face) and ``pending`` the others: the report is written when a run
starts (every video it will do pending), at most every :data:`REWRITE_SECONDS` while it runs, and when
it stops, so an interrupted or killed run leaves a report that says how many videos were never
extracted. :func:`read_report` (what ``bench data index`` and ``verify`` print) moves every pending video
whose completion marker exists into ``videos``, so it describes what is on disk whenever it is read,
even after a kill between two writes. Version 1 reports (before ``planned`` and ``pending``) are read
as complete.

Frame numbers are indices in the video (the PNG names); boxes are the kept face in the video's
pixels before the ``scale`` enlargement. ``no_face`` lists the frames without a detection at or above
the score floor (no crop), ``below_floor`` those of them that had detections, all weaker;
``off_track`` frames had faces but none on the track of the face kept (no crop, ``track`` rule);
``mask_unused`` lists frames where a video with a mask fell back to the rule because the mask frame was
missing or marked none of the faces, and ``mask_error`` says why a mask video could not be read at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.errors import DataError

REPORT_NAME = "faces_report.json"
#: A running extraction rewrites the report at most this often (each write holds every finished video).
REWRITE_SECONDS = 30.0
FORMAT = "forgery-bench faces report"
VERSION = 3
SUMMARY_KEYS = ("videos", "ok", "failed", "no_face", "short", "frames_written", "frames_no_face",
                "frames_below_floor", "frames_off_track", "frames_unreadable", "face_jumps", "mask_unused", "pending")
RULES = {
    "track": ("the face of the video's most confident continuous track: detections at or above the score floor "
              "linked frame to frame where the box does not jump, the track with the highest summed detector "
              "confidence kept (a manipulation mask's face first); frames without it are off_track, no crop"),
    "largest": "DeepfakeBench's rule: the largest detection at or above the score floor in each frame",
}


def face_choice(settings: dict[str, Any]) -> dict[str, Any]:
    """The report's record of which face is kept and the score floor below which nothing is cropped."""
    return {"rule": settings["choose"], "score_floor": settings["score_floor"], "description": RULES[settings["choose"]]}


def write_json(path: Path, data: Any, text: str | None = None) -> None:
    """Write ``data`` as JSON (or ``text`` as is) under a temporary name and rename it: readers see the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) if text is None else text, encoding="utf-8")
    tmp.replace(path)


def marker_path(out: Path, video: str) -> Path:
    """Where the completion marker of ``video`` (a path relative to the video root) lives."""
    return out / ".faces" / "done" / f"{video}.json"


def load_markers(out: Path) -> dict[str, dict[str, Any]]:
    """Every finished video's record, keyed by its path relative to the video root."""
    done = out / ".faces" / "done"
    records = {}
    for path in sorted(done.rglob("*.json")) if done.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # cannot happen with atomic writes unless edited by hand: redo the video
        records[record["video"]] = record
    return records


def summarise(records: list[dict[str, Any]], pending: int = 0) -> dict[str, int]:
    """Counts of videos by outcome and of dropped or flagged frames, and of ``pending`` videos not yet finished."""
    return {
        "videos": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "no_face": sum(r["status"] == "no_face" for r in records),
        "short": sum(bool(r["short"]) for r in records),
        "frames_written": sum(r["written"] for r in records),
        "frames_no_face": sum(len(r["no_face"]) for r in records),
        "frames_below_floor": sum(len(r.get("below_floor", [])) for r in records),
        "frames_off_track": sum(len(r.get("off_track", [])) for r in records),
        "frames_unreadable": sum(len(r["unreadable"]) for r in records),
        "face_jumps": sum(len(r["jumps"]) for r in records),
        "mask_unused": sum(len(r["mask_unused"]) for r in records),
        "pending": pending,
    }


def write_report(out: Path, header: dict[str, Any], records: list[dict[str, Any]], pending: list[str]) -> Path:
    """Write ``OUT/faces_report.json`` from the header (with ``planned``), the finished videos' records and the
    planned videos not finished (``pending``); returns its path."""
    records = sorted(records, key=lambda r: r["video"])
    head = json.dumps({"format": FORMAT, "version": VERSION, **header, "summary": summarise(records, len(pending)),
                       "pending": sorted(pending)}, indent=1)
    # Readable at a glance and still small for tens of thousands of videos: the header indented, one line per video.
    videos = ",\n".join(json.dumps(r) for r in records)
    path = out / REPORT_NAME
    write_json(path, None, f'{head[:-2]},\n "videos": [\n{videos}\n ]\n}}\n')
    return path


def read_report(directory: Path) -> dict[str, Any] | None:
    """The faces report in ``directory``, or None when there is none; DataError when it is not one."""
    path = directory / REPORT_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); run bench data faces again to rewrite it.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path} is not a forgery-bench faces report; move it away or run bench data faces again.")
    return _with_markers(directory, data)


def _with_markers(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The report with every pending video that has a completion marker on disk counted as finished."""
    pending = data.get("pending", [])
    finished = {}
    for video in pending:
        path = marker_path(directory, video)
        try:
            finished[video] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            finished[video] = None  # cannot happen with atomic writes unless edited by hand: still pending
    finished = {k: v for k, v in finished.items() if v is not None}
    if finished:
        records = [*data["videos"], *finished.values()]
        rest = [v for v in pending if v not in finished]
        data = {**data, "videos": sorted(records, key=lambda r: r["video"]), "pending": rest,
                "summary": summarise(records, len(rest))}
    return data


def incomplete(pending: int, planned: int) -> str:
    """The words that say an extraction is unfinished (shared by the report's summary, the command and its error)."""
    return (f"INCOMPLETE: {pending} of {planned} planned videos not extracted (the run was interrupted or killed); "
            "run the same bench data faces command again to extract only those")


def unfinished(directory: Path) -> str | None:
    """A sentence saying that ``directory`` holds a face extraction stopped before the end, or None."""
    data = read_report(directory)
    if not data or not data.get("pending"):
        return None
    return (f"{directory} holds an unfinished face extraction ({directory / REPORT_NAME}): "
            f"{incomplete(len(data['pending']), data['planned'])}")


def describe(directory: Path, limit: int = 3) -> list[str]:
    """One line summarising the faces report in ``directory``, then one per failed and per pending (never
    extracted) video, up to ``limit`` of each."""
    data = read_report(directory)
    if data is None:
        return []
    s, settings = data["summary"], data["settings"]
    detector = data["detector"]
    pending = data.get("pending", [])  # absent from version 1 reports
    state = f"{incomplete(len(pending), data['planned'])}; " if pending else ""
    lines = [(f"{directory / REPORT_NAME}: {state}{s['videos']} videos, {s['failed']} failed, {s['no_face']} without "
             f"any face, {s['short']} with fewer than {settings['frames']} frames; {s['frames_written']} frames "
             f"written, {s['frames_no_face']} without a face, {s['frames_unreadable']} unreadable, {s['face_jumps']} "
             f"face jumps ({detector['name']} {detector['version']})")]
    for what, videos in (("failed", [r["error"] for r in data["videos"] if r["status"] == "failed"]),
                         ("pending", pending)):
        lines += [f"  {what}: {video}" for video in videos[:limit]]
        if len(videos) > limit:
            lines.append(f"  ... and {len(videos) - limit} more {what} videos (see the report)")
    return lines
