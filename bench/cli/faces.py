"""The ``bench data faces`` arguments, free of imports because the parser is built for every ``bench``
command (``bench.data`` would load pandas). The defaults are
:class:`bench.data.faces.settings.Settings`'s (a test keeps them equal)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  bench data faces ffpp ~/FaceForensics++ --out $BENCH_DATA_ROOT/FaceForensics++
  bench data faces celebdf ~/Celeb-DF-v2 --out $BENCH_DATA_ROOT/Celeb-DF-v2 --workers 8
  bench data faces ffpp ~/FaceForensics++ --option compression=c40 --option parts=youtube,Deepfakes
  (run the same command again to resume; then: bench data index LAYOUT OUT)"""


def add(data_sub) -> argparse.ArgumentParser:
    """Add ``faces`` to the ``bench data`` sub-parsers."""
    about = "extract face crops from a face dataset's videos into the layout bench data index reads"
    faces = data_sub.add_parser(
        "faces", help=about, description=about + " (docs/datasets.md).", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    faces.add_argument("layout", help="ffpp (with DFD and FaceShifter), celebdf, dfdc, dfdcp, deeperforensics, uadfv")
    faces.add_argument("video_root", help="the folder the official download was extracted to")
    faces.add_argument("--out", help="dataset folder to write (default VIDEO_ROOT: frames beside the videos)")
    faces.add_argument("--frames", type=int, default=32, help="evenly spaced frames per video (default 32)")
    faces.add_argument("--size", type=int, default=256, help="side of the square crops in px (default 256)")
    faces.add_argument("--scale", type=float, default=1.3, help="crop side / face box side (default 1.3)")
    faces.add_argument("--detect-size", type=int, default=640,
                       help="longer side of the frame the detector sees, 0 = full resolution (default 640)")
    faces.add_argument("--upsample", type=int, default=1, help="most dlib pyramid up-sampling, used where a coarser scan finds no face (default 1)")
    faces.add_argument("--min-score", type=float, default=0.0, help="score dlib needs to return a detection (default 0)")
    faces.add_argument("--score-floor", type=float, default=0.3,
                       help="a detection below this score is never cropped; frames with only such are reported (default 0.3)")
    faces.add_argument("--choose", choices=["track", "largest"], default="track",
                       help="the face kept: the most confident continuous track (default), or the largest box per frame "
                            "(DeepfakeBench's rule; with --score-floor 0 to reproduce its crops)")
    faces.add_argument("--jump", type=float, default=1.0,
                       help="report a kept face that moves more than this many face sizes (default 1.0)")
    faces.add_argument("--landmarks", type=int, default=0, choices=[0, 5, 68],
                       help="landmark points to store (needs face-recognition-models; 68 is non-commercial)")
    faces.add_argument("--workers", type=int, help="worker processes (default one per core; 0 = in this process)")
    faces.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="layout option, e.g. compression=c40 or parts=youtube,Deepfakes (ffpp)")
    faces.add_argument("--no-progress", action="store_true", help="no progress bar")
    return faces


def settings_from(args: argparse.Namespace):
    """The extraction settings (a :class:`~bench.data.faces.settings.Settings`) given on the command line."""
    from bench.data.faces.settings import Settings

    return Settings(frames=args.frames, size=args.size, scale=args.scale, detect_size=args.detect_size,
                    upsample=args.upsample, min_score=args.min_score, score_floor=args.score_floor, choose=args.choose,
                    jump=args.jump, landmarks=args.landmarks)


def options_from(args: argparse.Namespace) -> dict[str, str]:
    """The layout options given as ``--option KEY=VALUE`` (values are text: folder names, levels)."""
    from bench.errors import ConfigError

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r} is not KEY=VALUE; write it like --option compression=c40.")
        options[key.strip()] = value.strip()
    return options
