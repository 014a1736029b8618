"""Reading sampled frames from videos with B-frames in every container ``bench data faces`` meets.

With B-frames the decode order differs from the presentation order, and AVI's index seeks by
decode timestamp, so a seek can land after the wanted frame; the sampled frames must still be
exactly those a sequential decode gives.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from bench.data.faces.synthetic import write_video
from bench.data.faces.video import probe, read_frames, sample_indices

N_FRAMES = 90  # 32 of 90 sampled: gaps of 2-3 frames, so reading seeks across keyframes every 12


def distinct_frames(n: int) -> list[np.ndarray]:
    """``n`` small frames that differ from each other everywhere a codec could blur them together."""
    frames = []
    for i in range(n):
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[..., 0] = i * 2
        frame[:, i % 64, 1] = 255
        frames.append(frame)
    return frames


@pytest.mark.parametrize("name, codec, b_frames", [("clip.avi", "mpeg4", "2"), ("clip.mp4", "libx264", "3"),
                                                    ("clip.mkv", "libx264", "3")])
def test_sampled_frames_equal_a_sequential_decode_with_b_frames(tmp_path, name, codec, b_frames):
    path = write_video(tmp_path / name, distinct_frames(N_FRAMES), codec=codec, keyint=12, options={"bf": b_frames})
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        assert any(p.pts != p.dts for p in packets)  # frames are reordered: there are B-frames
    with av.open(str(path)) as container:
        truth = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    info = probe(path)
    assert info.n_frames == len(truth) == N_FRAMES
    wanted = sample_indices(N_FRAMES, 32)
    got = dict(read_frames(info, wanted))
    assert sorted(got) == wanted
    unreadable = [i for i in wanted if got[i] is None]
    assert not unreadable, f"{name}: frames {unreadable} reported unreadable"
    wrong = [i for i in wanted if not np.array_equal(got[i], truth[i])]
    assert not wrong, f"{name}: frames {wrong} differ from a sequential decode"
