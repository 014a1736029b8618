"""Video libraries for ``bench data faces``: time to fetch N evenly spaced frames, and whether they are right.

Usage: python benchmarks/faces_decode.py [--size 640x480] [--frames 300] [--keyint 250] [-n 32]

Writes a test clip (the astronaut photo moving; libx264, the given keyframe interval: 250 is
x264's default, which FF++ c23 uses) to a temporary directory and times, for each library that
is importable: PyAV decoding every frame, PyAV through ``bench.data.faces.video`` (seeking),
OpenCV's ``CAP_PROP_POS_FRAMES`` seek and its sequential ``grab``, and decord's ``get_batch``.
"exact" says whether every returned frame equals the one at that index in a full decode.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.data.faces.synthetic import render
from bench.data.faces.video import probe, read_frames, sample_indices


def write_clip(path: Path, width: int, height: int, n: int, keyint: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": str(keyint)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(n):
            frame, _ = render(width, height, [(width / 2 + width / 6 * np.sin(t / 20), height / 2, height / 3)])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def pyav_all(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    import av

    out = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
    return out


def pyav_seek(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    return dict(read_frames(probe(path), wanted))


def opencv_seek(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    import cv2

    cap, out = cv2.VideoCapture(str(path)), {}
    for i in wanted:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None
    return out


def opencv_grab(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    import cv2

    cap, out = cv2.VideoCapture(str(path)), {}
    for i in range(max(wanted) + 1):
        if not cap.grab():
            break
        if i in wanted:
            out[i] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
    return out


def decord_batch(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    return dict(zip(wanted, reader.get_batch(wanted).asnumpy()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--keyint", type=int, default=250)
    parser.add_argument("-n", type=int, default=32)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_clip(path, width, height, args.frames, args.keyint)
        wanted = sample_indices(args.frames, args.n)
        truth = pyav_all(path, wanted)
        print(f"{args.size}, {args.frames} frames, keyframe every {args.keyint}, {len(wanted)} sampled")
        print(f"{'reader':<22} {'s/video':>8} {'sampled frames/s':>17} {'exact':>6}")
        for name, read in (("PyAV decode all", pyav_all), ("PyAV seek (bench)", pyav_seek),
                           ("OpenCV seek", opencv_seek), ("OpenCV grab all", opencv_grab),
                           ("decord get_batch", decord_batch)):
            try:
                start = time.perf_counter()
                got = read(path, wanted)
                seconds = time.perf_counter() - start
            except ImportError:
                print(f"{name:<22} not installed")
                continue
            exact = all(got.get(i) is not None and np.array_equal(got[i], truth[i]) for i in wanted)
            near = np.mean([np.abs(got[i].astype(int) - truth[i]).mean() for i in wanted if got.get(i) is not None])
            print(f"{name:<22} {seconds:>8.3f} {len(wanted) / seconds:>17.1f} {exact!s:>6}"
                  + ("" if exact else f"  (mean abs diff {near:.2f})"))


if __name__ == "__main__":
    main()
