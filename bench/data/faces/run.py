"""``bench data faces``: every video of a layout through :func:`process_video`, in parallel and resumable."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.data.faces.extract import STATE_DIR, Tools, new_record, process_video
from bench.data.faces.layouts import Job, plan
from bench.data.faces.report import (
    REWRITE_SECONDS,
    face_choice,
    incomplete,
    load_markers,
    marker_path,
    summarise,
    write_json,
    write_report,
)
from bench.data.faces.settings import Settings
from bench.data.faces.video import library
from bench.data.indexers.ffpp import DFD_PARTS
from bench.errors import ConfigError, DataError

_TOOLS: Tools | None = None  # one per worker process, built by _init


@dataclass
class Summary:
    """What a run did: totals over every finished video, and this run's own work and speed."""

    layout: str
    out: Path
    report: Path
    totals: dict[str, int]
    header: dict[str, Any]
    planned: int = 0  # videos of the layout found under the video root
    extracted: int = 0  # videos processed by this run
    skipped: int = 0  # videos finished by an earlier run
    frames: int = 0  # sampled frames processed by this run
    seconds: float = 0.0
    workers: int = 1
    missing: list[str] = field(default_factory=list)
    index: list[str] = field(default_factory=list)  # the bench data index layouts to run next
    failures: list[str] = field(default_factory=list)  # the error of each video that failed in this run

    @property
    def frames_per_core_second(self) -> float:
        return self.frames / (self.seconds * self.workers) if self.seconds > 0 else 0.0


class ExtractionInterrupted(DataError, KeyboardInterrupt):
    """Ctrl-C stopped an extraction; the report and ``summary`` say how many planned videos are left.

    Still a KeyboardInterrupt for Python callers; a BenchError so that the command ends with one sentence
    saying what is left and a non-zero status rather than a traceback.
    """

    def __init__(self, message: str, summary: Summary):
        super().__init__(message)
        self.summary = summary


def default_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _init(settings: Settings) -> None:
    global _TOOLS
    _TOOLS = Tools(settings)


def _work(job: Job, video_root: Path, out: Path) -> dict[str, Any]:
    """One video in a worker process, with the worker's tools."""
    return process_video(job, video_root, out, _TOOLS)


def _finished(out: Path, job: Job, record: dict[str, Any] | None) -> bool:
    """True when an earlier run finished ``job`` and its frames are still there; failed videos are retried
    (the file may have been downloaded again)."""
    if record is None or record["status"] == "failed":
        return False
    return record["written"] == 0 or (out / job.frames).is_dir()


def _index_layouts(layout: str, found) -> list[str]:
    """The ``bench data index`` layouts that read what this run writes (FF++ and DFD share a tree)."""
    if layout != "ffpp":
        return [layout]
    dfd = [any(part in job.video.split("/")[:2] for part in DFD_PARTS) for job in found.jobs]
    return (["ffpp"] if not all(dfd) else []) + (["dfd"] if any(dfd) else [])


def _pool_run(jobs: list[Job], paths: tuple[Path, Path], settings: Settings, workers: int,
              finished: Callable[[dict[str, Any]], None], work: Callable = _work) -> list[Job]:
    """Run ``jobs`` (taken from the end of the list) on ``workers`` processes, ``workers`` at a time.

    Returns the jobs that were running when a worker process died (empty when none died); keeping
    only ``workers`` in flight makes those the only suspects.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a parent that may hold threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(settings,)) as pool:
        running: dict[Future, Job] = {}
        try:
            while jobs or running:
                while jobs and len(running) < workers:
                    job = jobs.pop()
                    running[pool.submit(work, job, *paths)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    error = future.exception()
                    if error is None:
                        finished(future.result())
                        del running[future]
                    elif not isinstance(error, BrokenProcessPool):
                        raise error  # not a bad video (process_video records those): a bug, or an interrupt
                if any(f in running for f in done):
                    return list(running.values())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return []


def _in_pool(todo: list[Job], paths: tuple[Path, Path], settings: Settings, workers: int,
             finished: Callable[[dict[str, Any]], None], work: Callable = _work) -> None:
    """Run every job in worker processes; a video whose worker dies (a crash in FFmpeg or dlib on a
    damaged file) is retried alone, and recorded as failed when it kills its worker again."""
    jobs = list(reversed(todo))
    while jobs:
        for job in _pool_run(jobs, paths, settings, workers, finished, work):
            if _pool_run([job], paths, settings, 1, finished, work):
                record = new_record(job)
                record.update(status="failed", error=f"{paths[0] / job.video} crashed the extraction process (in the "
                                                      "video decoder or the face detector); it is probably corrupt: "
                                                      "download it again.")
                finished(record)


def _check_resume(out: Path, state: dict[str, Any]) -> None:
    """Refuse to mix settings in one output; record them for the first run."""
    path = out / STATE_DIR / "settings.json"
    if path.is_file():
        import json

        before = json.loads(path.read_text(encoding="utf-8"))
        flat = [{**b["settings"], "layout": b["layout"], **{f"option {k}": v for k, v in b["options"].items()}}
                for b in (before, state)]
        changed = [f"{k} {flat[0].get(k)} -> {flat[1].get(k)}" for k in sorted({*flat[0], *flat[1]})
                   if flat[0].get(k) != flat[1].get(k)]
        if changed:
            raise ConfigError(f"{out} holds faces extracted with other settings ({', '.join(changed)}); use a new "
                              "--out, or the earlier settings to resume.")
    else:
        write_json(path, state)


def _copy_metadata(video_root: Path, out: Path, files: list[str]) -> None:
    """Copy the label/split files the indexer reads beside the frames (nothing to do when writing in place)."""
    for rel in files:
        source, target = video_root / rel, out / rel
        if target.exists() and os.path.samefile(source, target):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def extract_faces(layout: str, video_root: str | Path, out: str | Path | None = None, settings: Settings | None = None,
                  workers: int | None = None, options: dict[str, Any] | None = None, progress: bool = True) -> Summary:
    """Extract face crops of every video of ``layout`` under ``video_root`` into ``out`` (default: in place).

    ``workers`` processes run in parallel (default: one per core; 0 runs in this process).
    Videos finished by an earlier run into the same ``out`` are skipped; failed ones are retried.
    Configuration problems raise before any video is read; bad videos are recorded, never raised.
    The report is written before the first video and again at the end; a run stopped early (Ctrl-C raises
    :class:`ExtractionInterrupted`, anything else is re-raised with a note) lists the videos left as pending.
    """
    from tqdm.auto import tqdm

    settings = settings or Settings()
    settings.check()
    options = {k: str(v) for k, v in (options or {}).items()}
    video_root = Path(video_root)
    out = Path(out) if out is not None else video_root
    found = plan(layout, video_root, **options)
    tools = Tools(settings)  # fails here, before any work, when dlib or the landmark model is missing
    header = {"layout": layout, "options": options, "video_root": str(video_root.resolve()),
              "detector": tools.detector.info(), "landmarks": tools.landmarks.info() if tools.landmarks else None,
              "video_library": library(), "settings": asdict(settings), "face_choice": face_choice(asdict(settings))}
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, {"layout": layout, "options": options, "settings": asdict(settings)})
    _copy_metadata(video_root, out, found.metadata)
    header["planned"] = len(found.jobs)
    markers = load_markers(out)
    todo = [j for j in found.jobs if not _finished(out, j, markers.get(j.video))]
    # The report counts what earlier runs finished and what this one finishes; the rest of the plan is pending.
    redo = {j.video for j in todo}
    records = {j.video: markers[j.video] for j in found.jobs if j.video not in redo}
    workers = default_workers() if workers is None else workers
    summary = Summary(layout, out, out / "faces_report.json", {}, header, planned=len(found.jobs),
                      skipped=len(found.jobs) - len(todo),
                      workers=max(1, min(workers, len(todo))), missing=found.missing, index=_index_layouts(layout, found))
    bar = tqdm(total=len(todo), unit="video", desc="faces", disable=not progress)
    failed = 0
    start = time.perf_counter()

    written = time.monotonic()

    def finished(record: dict[str, Any]) -> None:
        nonlocal failed
        write_json(marker_path(out, record["video"]), record)
        records[record["video"]] = record
        summary.extracted += 1
        summary.frames += record["sampled"]
        failed += record["status"] == "failed"
        if record["status"] == "failed":
            summary.failures.append(record["error"])
        bar.update()
        bar.set_postfix(failed=failed)
        if time.monotonic() - written > REWRITE_SECONDS:
            report()

    def report() -> None:
        nonlocal written
        pending = [j.video for j in found.jobs if j.video not in records]
        summary.report = write_report(out, header, list(records.values()), pending)
        summary.totals = summarise(list(records.values()), len(pending))
        written = time.monotonic()

    report()  # before any work: what a killed run leaves says that every video it was to do is pending
    try:
        if workers == 0 or len(todo) <= 1:
            for job in todo:
                finished(process_video(job, video_root, out, tools))
        else:
            _in_pool(todo, (video_root, out), settings, summary.workers, finished)
    except BaseException as err:  # noqa: BLE001 - always re-raised by _stopped, after the report is written
        _stopped(summary, err, report)
    else:
        report()
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
        shutil.rmtree(out / STATE_DIR / "tmp", ignore_errors=True)
    return summary


def _stopped(summary: Summary, err: BaseException, report: Callable[[], None]) -> None:
    """Write the report of a run stopped by ``err`` and raise: ExtractionInterrupted for Ctrl-C, else ``err`` noted
    with what is left."""
    report()
    left = (f"{summary.totals['pending']} of {summary.planned} planned videos are not extracted; {summary.report} "
            "lists them under pending, and the same command again extracts only those")
    if isinstance(err, KeyboardInterrupt) and not isinstance(err, ExtractionInterrupted):
        raise ExtractionInterrupted(f"bench data faces was interrupted: {left} (kept: {summary.totals['videos']} "
                                    f"finished videos, {summary.totals['failed']} of them failed).", summary) from err
    err.add_note(f"bench data faces stopped: {left}.")
    raise err


def format_summary(summary: Summary) -> str:
    """The command's closing lines: what was extracted and dropped, speed, tools, and what to run next."""
    t, h = summary.totals, summary.header
    d, v = h["detector"], h["video_library"]
    lines = [f"faces: {incomplete(t['pending'], summary.planned)}"] if t["pending"] else []
    lines += [
        (f"faces: {t['videos']} videos in {summary.out} ({summary.extracted} processed now, {summary.skipped} done "
        f"before); {t['failed']} failed, {t['no_face']} without any face, {t['short']} with fewer than "
        f"{h['settings']['frames']} frames"),
        (f"frames: {t['frames_written']} written, {t['frames_no_face']} without a face ({t['frames_below_floor']} "
         f"with detections below the score floor {h['settings']['score_floor']}), {t['frames_off_track']} without the "
         f"kept face, {t['frames_unreadable']} unreadable, {t['face_jumps']} face jumps, {t['mask_unused']} where the "
         f"mask marked no detected face"),
        (f"speed: {summary.frames} sampled frames in {summary.seconds:.1f} s on {summary.workers} worker(s): "
        f"{summary.frames_per_core_second:.1f} frames/s per core"),
        f"detector: {d['name']} {d['version']} ({d['package']}, {d['licence']}); video: {v['name']} {v['version']}",
        f"report: {summary.report}",
        *(f"failed: {error}" for error in summary.failures),
    ]
    if h["landmarks"]:
        lines.append(f"landmarks: {h['landmarks']['points']} points ({h['landmarks']['licence']})")
    if summary.missing:
        lines.append(f"note: {summary.out} lacks {', '.join(summary.missing)}, which bench data index "
                     f"{summary.layout} reads; see docs/datasets.md for where to get it.")
    then = " && ".join(f"bench data index {layout} {summary.out}" for layout in summary.index)
    lines.append(f"next: the same bench data faces command, then {then}" if t["pending"] else f"next: {then}")
    return "\n".join(lines)
