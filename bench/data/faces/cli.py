"""The ``bench data faces`` argument parser (kept here so ``bench/cli.py`` stays a thin list of commands)."""

from __future__ import annotations

import argparse

from bench.data.faces.settings import Settings

DEFAULTS = Settings()


def add_parser(data_sub) -> argparse.ArgumentParser:
    """Add ``faces`` to the ``bench data`` sub-parsers."""
    faces = data_sub.add_parser(
        "faces", help="extract face crops from a face dataset's videos into the layout bench data index reads")
    faces.add_argument("layout", help="ffpp (with DFD and FaceShifter), celebdf, dfdc, dfdcp, deeperforensics, uadfv")
    faces.add_argument("video_root", help="the folder the official download was extracted to")
    faces.add_argument("--out", help="dataset folder to write (default VIDEO_ROOT: frames beside the videos)")
    faces.add_argument("--frames", type=int, default=DEFAULTS.frames, help="evenly spaced frames per video (default 32)")
    faces.add_argument("--size", type=int, default=DEFAULTS.size, help="side of the square crops in px (default 256)")
    faces.add_argument("--scale", type=float, default=DEFAULTS.scale, help="crop side / face box side (default 1.3)")
    faces.add_argument("--detect-size", type=int, default=DEFAULTS.detect_size,
                       help="longer side of the frame the detector sees, 0 = full resolution (default 640)")
    faces.add_argument("--upsample", type=int, default=DEFAULTS.upsample, help="dlib pyramid up-sampling (default 1)")
    faces.add_argument("--min-score", type=float, default=DEFAULTS.min_score, help="detector score needed (default 0)")
    faces.add_argument("--jump", type=float, default=DEFAULTS.jump,
                       help="report a kept face that moves more than this many face sizes (default 1.0)")
    faces.add_argument("--landmarks", type=int, default=DEFAULTS.landmarks, choices=[0, 5, 68],
                       help="landmark points to store (needs face-recognition-models; 68 is non-commercial)")
    faces.add_argument("--workers", type=int, help="worker processes (default one per core; 0 = in this process)")
    faces.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="layout option, e.g. compression=c40 or parts=youtube,Deepfakes (ffpp)")
    faces.add_argument("--no-progress", action="store_true", help="no progress bar")
    return faces


def settings_from(args: argparse.Namespace) -> Settings:
    """The extraction settings given on the command line."""
    return Settings(frames=args.frames, size=args.size, scale=args.scale, detect_size=args.detect_size,
                    upsample=args.upsample, min_score=args.min_score, jump=args.jump, landmarks=args.landmarks)
