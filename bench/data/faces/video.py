"""Reading sampled frames from a video with PyAV, seeking instead of decoding every frame.

:func:`probe` demuxes the file once without decoding (cheap: it only reads packet headers) to
learn the exact frame count and the presentation timestamp and keyframe flag of every frame;
:func:`read_frames` then decodes only what the sampled frames need: it seeks to the keyframe
before a sampled frame when a keyframe lies between the decoder's position and that frame, and
otherwise decodes forward from where it is. Frame ``i`` is the ``i``-th frame in presentation
order, so indices are exact even for variable-frame-rate files.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import DataError

#: File extensions taken as videos when a layout lists a dataset's files.
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


class VideoError(DataError):
    """A video file cannot be opened or holds no decodable frames."""


@dataclass
class VideoInfo:
    """What :func:`probe` learnt about a video: frame count, size, and per-frame timestamps."""

    path: Path
    width: int
    height: int
    #: Presentation timestamps of the frames, sorted: frame ``i`` has ``pts[i]``.
    pts: list[int] = field(repr=False)
    #: Timestamps of the keyframes, sorted.
    keyframes: list[int] = field(repr=False)

    @property
    def n_frames(self) -> int:
        return len(self.pts)


def sample_indices(n_frames: int, n: int) -> list[int]:
    """``n`` evenly spaced frame indices from ``0`` to ``n_frames - 1`` (every frame when there are fewer)."""
    if n_frames <= n:
        return list(range(n_frames))
    return sorted({int(i) for i in np.linspace(0, n_frames - 1, n).round()})


def library() -> dict[str, str]:
    """Name and version of the video library (for the extraction report)."""
    import av

    return {"name": "PyAV", "package": "av", "version": av.__version__,
            "ffmpeg": ".".join(map(str, av.library_versions["libavcodec"]))}


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path} cannot be opened as a video ({err.strerror or type(err).__name__}); it is "
                         "corrupt, truncated or not a video file: download it again.") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream, so no frames to extract; it is empty, audio-only or not a "
                         "video: download it again.")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Frame count, size and timestamps of a video, read without decoding; VideoError when unusable."""
    import av

    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        pts, keys = [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise VideoError(f"{path} has frames without timestamps; re-mux it (e.g. ffmpeg -i IN -c copy "
                                     "OUT.mp4) and run again.")
                pts.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        except av.error.FFmpegError as err:
            if not pts:
                raise VideoError(f"{path} cannot be read ({err.strerror or type(err).__name__}); it is corrupt: "
                                 "download it again.") from None
            # A damaged tail: the frames before it are still usable, the rest are reported missing.
        width, height = stream.codec_context.width, stream.codec_context.height
    if not pts:
        raise VideoError(f"{path} holds no video frames; download it again.")
    return VideoInfo(path, width, height, sorted(pts), sorted(keys))


def _rgb(frame) -> np.ndarray:
    array = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) or 0) // 90 % 4
    # The display matrix (phone videos) says how the picture is shown; the crop must see it upright.
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


def read_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield ``(index, RGB uint8 array)`` for each wanted frame in increasing order; the array is None
    for a frame that cannot be decoded (a damaged part of the file). Indices past the end yield None.
    """
    import av

    wanted = sorted(set(indices))
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # parallelism comes from worker processes; threads would only compete
        decoder, position = None, None
        for index in wanted:
            if index >= info.n_frames:
                yield index, None
                continue
            target = info.pts[index]
            next_key = bisect.bisect_right(info.keyframes, position) if position is not None else 0
            if decoder is None or target <= position or (
                    next_key < len(info.keyframes) and info.keyframes[next_key] <= target):
                try:
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError:
                    container.seek(0, stream=stream)
                decoder = container.decode(stream)
            found = None
            try:
                for frame in decoder:
                    position = frame.pts
                    if position is None or position >= target:
                        found = frame if position == target else None
                        break
            except av.error.FFmpegError:
                decoder = None  # re-seek for the next frame: the decoder state is unknown
            if found is None and position is not None and position > target:
                decoder = None  # overshot (a frame missing from the stream): seek afresh next time
            yield index, None if found is None else _rgb(found)
