"""Speed of ``bench data faces``: sampled frames per second per core on clips of a given size.

Usage: python benchmarks/faces_speed.py [--size 640x480] [--videos 4] [--length 300] [--workers 1] [--frames 32]

Writes ``--videos`` clips of the moving astronaut (libx264, x264's default keyframe interval, as
FF++ c23) to a temporary folder, extracts them with the default settings, and prints the
command's summary: frames/s per core, and how many frames had a face.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.data.faces.run import extract_faces, format_summary
from bench.data.faces.settings import Settings
from bench.data.faces.synthetic import render, write_video


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "UADFV"
        # One rendered clip, cut into --videos different stretches (rendering is not what is measured).
        clip = [render(width, height, [(width / 2 + width / 6 * np.sin(t / 25), height / 2 + height / 10 * np.cos(t / 40),
                                        height / 3 * (1 + 0.2 * np.sin(t / 60)))])[0]
                for t in range(args.length + args.videos)]
        for k in range(args.videos):
            write_video(root / f"real/{k:03d}.mp4", clip[k:k + args.length])
        summary = extract_faces("uadfv", root, Path(tmp) / "out", Settings(frames=args.frames),
                                workers=args.workers, progress=False)
        print(f"{args.videos} videos of {args.size}, {args.length} frames each")
        print(format_summary(summary))


if __name__ == "__main__":
    main()
