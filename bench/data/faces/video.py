"""Reading sampled frames from a video with PyAV, seeking instead of decoding every frame.

:func:`probe` demuxes the file once without decoding (cheap: it only reads packet headers) to
learn the exact frame count and the presentation timestamp and keyframe flag of every frame;
:func:`read_frames` then decodes only what the sampled frames need: it seeks to the keyframe
before a sampled frame when a keyframe lies between the decoder's position and that frame, and
otherwise decodes forward from where it is. Where a seek lands past the frame (AVI seeks by decode
timestamp, which with B-frames runs behind the presentation timestamp), it starts again from the
keyframe before, then from the first frame. Frame ``i`` is the ``i``-th frame in presentation
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


#: First bytes of the video containers the datasets ship in (offset, signature, name).
_SIGNATURES = [(4, (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"), "an MP4/MOV"),
               (0, (b"\x1a\x45\xdf\xa3",), "a Matroska/WebM"), (0, (b"\x00\x00\x01\xba",), "an MPEG"),
               (0, (b"FLV",), "an FLV"), (0, (b"\x30\x26\xb2\x75",), "an ASF/WMV")]


def container_kind(path: Path) -> str | None:
    """Which video container the file's first bytes announce ("an MP4/MOV", ...), or None for none of them."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI"
    return next((name for at, signatures, name in _SIGNATURES if head[at:at + 4].startswith(signatures)), None)


def _unopenable(path: Path, reason: str) -> VideoError:
    """Why a file cannot be opened: empty, a video container cut short or damaged, or not a video at all."""
    if path.stat().st_size == 0:
        return VideoError(f"{path} is empty (0 bytes); download it again.")
    kind = container_kind(path)
    if kind is not None:
        return VideoError(f"{path} starts as {kind} video but cannot be opened ({reason}): it is truncated or "
                          "damaged (an interrupted download?); download it again.")
    return VideoError(f"{path} is not a video file: its first bytes are no video container's (MP4/MOV, AVI, "
                      f"Matroska/WebM, MPEG, FLV, ASF) ({reason}); remove it from the video folder or replace it.")


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise _unopenable(path, err.strerror or type(err).__name__) from None
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


class _Reader:
    """One open video, decoding forward and seeking (or reopening) only where the wanted frame needs it."""

    def __init__(self, info: VideoInfo):
        self.info = info
        self.container = self.stream = self.decoder = None
        self.position: int | None = None  # pts of the last decoded frame; None: none decoded since (re)starting
        self._restart(None)

    def close(self) -> None:
        if self.container is not None:
            self.container.close()

    def _restart(self, stamp: int | None) -> None:
        """Decode from the keyframe before ``stamp``, or from the file's first frame when ``stamp`` is None."""
        import av

        if stamp is None or self.container is None:
            # Reopening is the one way to the first frame that every demuxer honours (a seek to 0 may not be).
            self.close()
            self.container = _open(self.info.path)
            self.stream = self.container.streams.video[0]
            self.stream.codec_context.thread_count = 1  # parallelism comes from worker processes
        if stamp is not None:
            try:
                self.container.seek(stamp, stream=self.stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                return self._restart(None)
        self.decoder, self.position = self.container.decode(self.stream), None

    def _forward(self, target: int):
        """Decode up to presentation timestamp ``target``: (its frame or None, pts of the first frame decoded)."""
        import av

        first = None
        try:
            for frame in self.decoder:
                self.position = frame.pts
                first = frame.pts if first is None else first
                if frame.pts is None or frame.pts >= target:
                    if frame.pts != target:
                        self.decoder = None  # overshot: seek afresh for the next frame
                    return (frame if frame.pts == target else None), first
        except av.error.FFmpegError:
            self.decoder = None  # re-seek for the next frame: the decoder state is unknown
        return None, first

    def _needs_seek(self, target: int) -> bool:
        """Whether decoding on from here would be wrong (target behind) or slower than a seek (a keyframe between)."""
        if self.decoder is None or (self.position is not None and target <= self.position):
            return True
        after = self.position if self.position is not None else self.info.pts[0]
        next_key = bisect.bisect_right(self.info.keyframes, after)
        return next_key < len(self.info.keyframes) and self.info.keyframes[next_key] <= target

    def frame(self, target: int):
        """The decoded frame at presentation timestamp ``target``, or None when it cannot be decoded."""
        if not self._needs_seek(target):
            return self._forward(target)[0]
        # A seek lands on a keyframe at or before the target's *decode* timestamp in some containers
        # (AVI's index), which with B-frames can be past the target's presentation timestamp: when the
        # first decoded frame is already past it, start from the keyframe before, then from the first frame.
        before = bisect.bisect_left(self.info.keyframes, target) - 1
        starts = [target, *([self.info.keyframes[before]] if before >= 0 else []), None]
        for stamp in starts:
            self._restart(stamp)
            found, first = self._forward(target)
            landed_late = first > target if first is not None else self.decoder is not None  # or at the end
            if found is not None or not landed_late:
                return found
        return None


def read_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield ``(index, RGB uint8 array)`` for each wanted frame in increasing order; the array is None
    for a frame that cannot be decoded (a damaged part of the file). Indices past the end yield None.
    """
    reader = _Reader(info)
    try:
        for index in sorted(set(indices)):
            found = reader.frame(info.pts[index]) if index < info.n_frames else None
            yield index, None if found is None else _rgb(found)
    finally:
        reader.close()
