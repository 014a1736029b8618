"""Where each face dataset keeps its videos, and where their frames go so that ``bench data index`` reads them.

A layout function lists the videos under the download (``VIDEO_ROOT``) as :class:`Job` s whose
frame folders follow the tree the indexers read (``<dir>/frames/<video>/<frame>.png``, landmarks
in ``<dir>/landmarks/<video>/<frame>.npy`` as DeepfakeBench keeps them), and names the small
label/split files the indexer needs, which are copied beside the frames when ``--out`` is not
the download itself. Layout options are keyword arguments (``--option compression=c40``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bench.data.faces.video import VIDEO_EXTENSIONS
from bench.data.indexers.common import subdirs
from bench.errors import ConfigError, DataError, did_you_mean

#: Folders a layout never looks into for videos: the ones extraction writes.
OUTPUT_DIRS = frozenset({"frames", "landmarks", "masks"})


@dataclass(frozen=True)
class Job:
    """One video to extract: paths relative to the video root (``video``, ``mask``) and to the output."""

    video: str
    frames: str
    landmarks: str
    mask: str | None = None


@dataclass
class Plan:
    """Everything a layout found: the videos, the metadata files to copy, and what is missing."""

    jobs: list[Job]
    metadata: list[str]
    missing: list[str]


def videos_in(directory: Path) -> list[str]:
    """Sorted names of the video files directly in ``directory``."""
    try:
        with os.scandir(directory) as it:
            return sorted(e.name for e in it if e.is_file() and not e.name.startswith(".")
                          and os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS)
    except (FileNotFoundError, NotADirectoryError):
        return []


def walk_videos(root: Path, below: str) -> list[str]:
    """Paths (relative to ``root``) of every video below ``root/below``, skipping extraction outputs."""
    found = []
    for here, dirs, _ in os.walk(root / below):
        dirs[:] = sorted(d for d in dirs if d not in OUTPUT_DIRS and not d.startswith("."))
        rel = Path(here).relative_to(root).as_posix()
        found += [f"{rel}/{name}" for name in videos_in(Path(here))]
    return sorted(found)


def _job(video: str, out_dir: str, name: str | None = None, mask: str | None = None) -> Job:
    """The video's frames in ``out_dir/frames/<name>`` and landmarks in ``out_dir/landmarks/<name>``."""
    name = name or PurePosixPath(video).stem
    return Job(video, f"{out_dir}/frames/{name}", f"{out_dir}/landmarks/{name}", mask)


def _in_folder(root: Path, folder: str) -> list[str]:
    """Videos of ``folder`` (directly in it, or in its ``videos`` sub-folder as DeepfakeBench's tree has it)."""
    source = f"{folder}/videos" if videos_in(root / folder / "videos") else folder
    return [f"{source}/{name}" for name in videos_in(root / source)]


def _metadata(root: Path, wanted: list[str]) -> tuple[list[str], list[str]]:
    return [w for w in wanted if (root / w).is_file()], [w for w in wanted if not (root / w).is_file()]


def ffpp(root: Path, compression: str = "c23", parts: str = "") -> Plan:
    """FaceForensics++ with DFD and FaceShifter: ``{original,manipulated}_sequences/<part>/<c23>/videos/*.mp4``.

    Masks (``manipulated_sequences/<method>/masks/videos/<video>.mp4``) pick the manipulated face
    where present. ``parts`` restricts to some parts (``youtube,Deepfakes``; default all found).
    """
    only = {p.strip() for p in parts.split(",") if p.strip()}
    jobs = []
    for kind in ("original_sequences", "manipulated_sequences"):
        for part in subdirs(root / kind):
            if only and part not in only:
                continue
            base = f"{kind}/{part}/{compression}"
            for name in videos_in(root / base / "videos"):
                mask = f"{kind}/{part}/masks/videos/{name}"
                jobs.append(_job(f"{base}/videos/{name}", base, mask=mask if (root / mask).is_file() else None))
    # The official split files, in splits/ or (as DeepfakeBench keeps them) in the root itself.
    prefix = "" if (root / "train.json").is_file() and not (root / "splits" / "train.json").is_file() else "splits/"
    return Plan(jobs, *_metadata(root, [f"{prefix}{s}.json" for s in ("train", "val", "test")]))


def celebdf(root: Path) -> Plan:
    """Celeb-DF v1/v2: ``{Celeb-real,YouTube-real,Celeb-synthesis}/*.mp4`` and ``List_of_testing_videos.txt``."""
    jobs = [_job(v, folder) for folder in ("Celeb-real", "YouTube-real", "Celeb-synthesis")
            for v in _in_folder(root, folder)]
    return Plan(jobs, *_metadata(root, ["List_of_testing_videos.txt"]))


def dfdc(root: Path) -> Plan:
    """DFDC: the public test set ``test/**/*.mp4`` with ``test/labels.csv``; training parts ``train/<part>/*.mp4``."""
    jobs = [_job(v, "test") for v in walk_videos(root, "test")]
    meta = ["test/labels.csv"]
    for part in subdirs(root / "train"):
        jobs += [_job(v, f"train/{part}") for v in walk_videos(root, f"train/{part}")]
        meta.append(f"train/{part}/metadata.json")
    return Plan(jobs, *_metadata(root, meta))


def dfdcp(root: Path) -> Plan:
    """DFDC-Preview: ``{original_videos,method_A,method_B}/**/<name>.mp4`` with ``dataset.json``.

    Frames go to ``<video path without .mp4>/`` (one of the two places the dfdcp indexer reads),
    which keeps apart videos of different ids that share a file name.
    """
    jobs = []
    for folder in ("original_videos", "method_A", "method_B"):
        for v in walk_videos(root, folder):
            path = PurePosixPath(v)
            jobs.append(Job(v, path.with_suffix("").as_posix(), f"{path.parent}/landmarks/{path.stem}"))
    return Plan(jobs, *_metadata(root, ["dataset.json"]))


def deeperforensics(root: Path) -> Plan:
    """DeeperForensics-1.0: ``manipulated_videos/<perturbation>/*.mp4`` and ``source_videos/<actor>/**/*.mp4``.

    A source video's frames go to ``source_videos/<actor>/frames/<name>``; the name is the file's
    stem, or its path below the actor folder joined by ``_`` where two stems of an actor clash.
    """
    jobs = [_job(v, f"manipulated_videos/{p}") for p in subdirs(root / "manipulated_videos")
            for v in _in_folder(root, f"manipulated_videos/{p}")]
    for actor in subdirs(root / "source_videos"):
        base = f"source_videos/{actor}"
        found = walk_videos(root, base)
        stems = [PurePosixPath(v).stem for v in found]
        for v, stem in zip(found, stems):
            name = stem if stems.count(stem) == 1 else PurePosixPath(v).relative_to(base).with_suffix("").as_posix()
            jobs.append(_job(v, base, name.replace("/", "_")))
    return Plan(jobs, *_metadata(root, [f"lists/splits/{s}.txt" for s in ("train", "val", "test")]))


def uadfv(root: Path) -> Plan:
    """UADFV: ``{real,fake}/*.mp4``."""
    return Plan([_job(v, folder) for folder in ("real", "fake") for v in _in_folder(root, folder)], [], [])


LAYOUTS: dict[str, Callable[..., Plan]] = {
    "ffpp": ffpp, "celebdf": celebdf, "dfdc": dfdc, "dfdcp": dfdcp, "deeperforensics": deeperforensics,
    "uadfv": uadfv,
}


def plan(layout: str, root: Path, **options: Any) -> Plan:
    """The layout's videos under ``root``; errors (before any work) for an unknown layout or option,
    a missing directory, no videos, or two videos whose frames would share a folder."""
    if layout not in LAYOUTS:
        raise ConfigError(f"bench data faces has no layout {layout!r}.{did_you_mean(layout, LAYOUTS)} "
                          f"Available: {', '.join(LAYOUTS)} (DFD and FaceShifter are part of ffpp).")
    function = LAYOUTS[layout]
    allowed = list(inspect.signature(function).parameters)[1:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"Layout {layout!r} has no option {unknown[0]!r}; its options are: "
                          f"{', '.join(allowed) or 'none'}.")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; pass the folder the {layout} download was extracted to.")
    found = function(root, **{k: str(v) for k, v in options.items()})
    if not found.jobs:
        doc = (inspect.getdoc(function) or "").splitlines()[0]
        raise DataError(f"Found no videos under {root} for layout {layout!r}; it expects {doc}")
    owners: dict[str, str] = {}
    for job in found.jobs:
        if job.frames in owners:
            raise DataError(f"{root / owners[job.frames]} and {root / job.video} would both write frames to "
                            f"{job.frames}; rename one of them.")
        owners[job.frames] = job.video
    return found
