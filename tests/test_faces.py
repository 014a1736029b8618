"""``bench data faces``: real face detection on a clip of a real photo, exact seeking, bad videos, resuming.

The clips are scikit-image's ``astronaut`` photo moved and scaled frame by frame, so the true face
box of every frame is known (``bench.data.faces.synthetic``); they are tiny (128 px, a few dozen
frames) to keep the tests fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from bench.data.faces import crop as geometry
from bench.data.faces.extract import Settings, new_record
from bench.data.faces.layouts import Job
from bench.data.faces.report import REPORT_NAME, describe, marker_path, read_report
from bench.data.faces.run import _in_pool, extract_faces
from bench.data.faces.synthetic import astronaut_clip, render, write_video
from bench.data.faces.video import VideoError, probe, read_frames, sample_indices
from bench.errors import ConfigError

HIDDEN = range(18, 22)  # frames of the 40-frame clip that show no face




def report_of(out: Path) -> dict:
    return json.loads((out / REPORT_NAME).read_text())


def record_of(out: Path, video: str) -> dict:
    return next(r for r in report_of(out)["videos"] if r["video"] == video)


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_command_line_defaults_are_the_settings_and_help_has_examples(capsys):
    from bench.cli import build_parser as _parser
    from bench.cli.faces import options_from, settings_from

    args = _parser().parse_args(["data", "faces", "ffpp", "videos", "--option", "compression=c40"])
    assert settings_from(args) == Settings() and options_from(args) == {"compression": "c40"}
    code, out, _ = run_cli(["data", "faces", "--help"], capsys)
    assert code == 0 and "bench data faces ffpp" in out.split("examples:")[1]


# -- video reading --------------------------------------------------------------------------------
def test_sample_indices_are_evenly_spaced_with_both_ends():
    assert sample_indices(100, 5) == [0, 25, 50, 74, 99]
    assert sample_indices(3, 32) == [0, 1, 2]
    assert sample_indices(32, 32) == list(range(32))


def test_seeking_returns_exactly_the_frames_a_full_decode_gives(tmp_path):
    frames, _ = astronaut_clip(30, 64)
    path = write_video(tmp_path / "clip.mp4", frames, keyint=4)  # keyframes every 4: reading must seek
    info = probe(path)
    assert (info.n_frames, info.width, info.height) == (30, 64, 64) and len(info.keyframes) >= 7
    truth = decode_all(path)
    wanted = [0, 5, 6, 13, 29, 30]
    got = dict(read_frames(info, wanted))
    assert got.pop(30) is None  # past the end
    for index, frame in got.items():
        assert np.array_equal(frame, truth[index]), index


# -- geometry --------------------------------------------------------------------------------------
def test_square_crop_is_centred_and_padded_black_outside_the_frame():
    box = (10.0, 20.0, 30.0, 60.0)
    region = geometry.square(box, 1.3)
    assert geometry.centre(region) == geometry.centre(box)
    assert region[2] - region[0] == pytest.approx(52.0) == region[3] - region[1]
    frame = np.full((64, 64, 3), 200, dtype=np.uint8)
    crop = np.asarray(geometry.crop(frame, (-32.0, -32.0, 32.0, 32.0), 16))
    assert crop.shape == (16, 16, 3)
    assert crop[:6, :6].max() == 0 and crop[10:, 10:].min() == 200  # black where the frame ends


def test_jumps_flag_a_moved_or_resized_face_only():
    face = (0.0, 0.0, 10.0, 10.0)
    assert not geometry.jumps(None, face, 1.0)
    assert not geometry.jumps(face, (3.0, 2.0, 13.0, 12.0), 1.0)
    assert geometry.jumps(face, (30.0, 0.0, 40.0, 10.0), 1.0)
    assert geometry.jumps(face, (0.0, 0.0, 25.0, 25.0), 1.0)


# -- faces on the astronaut clip -------------------------------------------------------------------
def test_crops_contain_the_true_face_and_hidden_frames_are_reported(tmp_path):
    frames, boxes = astronaut_clip(40, 128, hidden=HIDDEN)
    write_video(tmp_path / "videos/real/astronaut.mp4", frames)
    summary = extract_faces("uadfv", tmp_path / "videos", tmp_path / "UADFV", workers=0, progress=False)
    record = record_of(tmp_path / "UADFV", "real/astronaut.mp4")
    sampled = sample_indices(40, 32)
    assert record["n_frames"] == 40 and record["sampled"] == 32 and record["status"] == "ok"
    hidden = [i for i in sampled if boxes[i] is None]
    assert record["no_face"] == hidden and hidden  # every out-of-view frame is reported, nothing else
    found = {r[0]: tuple(r[1:5]) for r in record["boxes"]}  # [frame, x0, y0, x1, y1, score]
    shown = [i for i in sampled if boxes[i] is not None]
    good = 0
    for i in shown:
        if i in found:
            inside, offset = geometry.crop_quality(boxes[i], geometry.square(found[i], 1.3))
            good += inside >= 0.9 and offset <= 0.15
    assert good >= 0.9 * len(shown)
    written = sorted((tmp_path / "UADFV/real/frames/astronaut").iterdir())
    assert [p.name for p in written] == [f"{i:03d}.png" for i in sorted(found)]
    assert Image.open(written[0]).size == (256, 256)
    assert summary.totals["frames_no_face"] == len(hidden) and summary.totals["failed"] == 0
    header = report_of(tmp_path / "UADFV")
    assert header["detector"]["package"] == "dlib-bin" and header["detector"]["licence"].startswith("Boost")
    assert header["video_library"]["name"] == "PyAV" and header["settings"]["frames"] == 32


def test_the_mask_picks_the_manipulated_face_and_a_switch_of_largest_face_is_a_jump(tmp_path):
    ff = tmp_path / "FaceForensics++"
    frames, masks, small = [], [], []
    for t in range(6):
        frame, (left, _) = render(160, 80, [(40 + t, 40, 44), (120 - t, 42, 60)])
        mask = np.zeros_like(frame)
        x0, y0, x1, y1 = (round(v) for v in left)
        mask[y0:y1, x0:x1] = 255  # the smaller face is the manipulated one
        frames.append(frame), masks.append(mask), small.append(left)
    write_video(ff / "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4", frames)
    write_video(ff / "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4", masks)
    write_video(ff / "original_sequences/youtube/c23/videos/000.mp4", frames)
    # The two faces swap sizes after frame 2: the largest face is another person from frame 3 on.
    swapped = [render(160, 80, [(40, 40, 60 if t >= 3 else 44), (120, 42, 44 if t >= 3 else 60)])[0] for t in range(6)]
    write_video(ff / "original_sequences/youtube/c23/videos/001.mp4", swapped)
    track, largest = tmp_path / "track", tmp_path / "largest"
    extract_faces("ffpp", ff, track, settings=Settings(frames=6), workers=0, progress=False)
    extract_faces("ffpp", ff, largest, settings=Settings(frames=6, choose="largest"), workers=0, progress=False)
    # The largest face is another person from frame 3 on; the track rule stays with one person.
    assert record_of(largest, "original_sequences/youtube/c23/videos/001.mp4")["jumps"] == [3]
    followed = record_of(track, "original_sequences/youtube/c23/videos/001.mp4")
    assert followed["jumps"] == [] and len({geometry.centre(tuple(b[1:5]))[0] > 80 for b in followed["boxes"]}) == 1
    fake = record_of(track, "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4")
    real = record_of(largest, "original_sequences/youtube/c23/videos/000.mp4")
    assert fake["mask"] == "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4" and real["mask"] is None
    assert fake["written"] == real["written"] == 6 and not fake["mask_unused"]
    for (i, *box, _), (_, *biggest, _) in zip(fake["boxes"], real["boxes"]):
        assert geometry.iou(tuple(box), small[i]) > 0.5  # the marked face
        assert geometry.iou(tuple(biggest), small[i]) == 0  # without a mask, the largest: the other one


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_videos_are_named_recorded_and_the_run_goes_on(tmp_path, capsys):
    root = tmp_path / "UADFV"
    frames, _ = astronaut_clip(8, 128)
    good = write_video(root / "real/good.mp4", frames)
    data = good.read_bytes()
    (root / "fake").mkdir()
    (root / "fake/truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "fake/notes.mp4").write_text("these are notes, not a video\n")
    empty = av.open(str(root / "real/zero_frames.mp4"), "w")
    stream = empty.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    empty.start_encoding()
    empty.close()
    code, out, err = run_cli(["data", "faces", "uadfv", str(root), "--workers", "0", "--frames", "4",
                              "--no-progress"], capsys)
    assert code == 2 and "3 of 4 videos failed" in err and str(root / REPORT_NAME) in err
    assert "Traceback" not in err and "3 failed" in out and "frames/s per core" in out
    records = {r["video"]: r for r in report_of(root)["videos"]}
    assert records["real/good.mp4"]["status"] == "ok" and records["real/good.mp4"]["written"] == 4
    assert (root / "real/frames/good").is_dir() and not (root / "fake/frames").exists()
    for video, words, not_words in [("fake/truncated.mp4", "truncated", "not a video"),
                                    ("fake/notes.mp4", "not a video", "truncated"), ("real/zero_frames.mp4", "no ", "")]:
        error = records[video]["error"]
        assert records[video]["status"] == "failed" and words in error and (not not_words or not_words not in error)
        assert str(root / video) in error and f"failed: {error}" in out, video  # each named on the terminal
    with pytest.raises(VideoError, match="notes.mp4"):
        probe(root / "fake/notes.mp4")


def test_bad_settings_and_layouts_fail_before_any_work(tmp_path):
    (tmp_path / "v/real").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--scale 0.5"):
        extract_faces("uadfv", tmp_path / "v", tmp_path / "out", Settings(scale=0.5), workers=0)
    with pytest.raises(ConfigError, match="Did you mean 'celebdf'"):
        extract_faces("celebd", tmp_path / "v", tmp_path / "out", workers=0)
    with pytest.raises(Exception, match="Found no videos"):
        extract_faces("uadfv", tmp_path / "v", tmp_path / "out", workers=0)
    assert not (tmp_path / "out").exists()


# -- resuming --------------------------------------------------------------------------------------
def test_a_killed_run_resumes_without_redoing_finished_videos(tmp_path):
    root, out = tmp_path / "videos", tmp_path / "UADFV"
    frames, _ = astronaut_clip(8, 128)
    for n, name in enumerate(("a", "b", "c")):
        write_video(root / f"real/{name}.mp4", frames[n:n + 6])
    settings = Settings(frames=3)
    first = extract_faces("uadfv", root, out, settings, workers=0, progress=False)
    assert (first.extracted, first.skipped) == (3, 0)
    # What a kill leaves behind: video b's marker not yet written, its frames stale, a temporary folder.
    marker_path(out, "real/b.mp4").unlink()
    (out / "real/frames/b/999.png").write_bytes(b"stale")
    (out / ".faces/tmp/0123").mkdir(parents=True)
    finished_a = (out / "real/frames/a/000.png").stat().st_mtime_ns
    second = extract_faces("uadfv", root, out, settings, workers=0, progress=False)
    assert (second.extracted, second.skipped) == (1, 2)
    assert (out / "real/frames/a/000.png").stat().st_mtime_ns == finished_a  # not redone
    assert sorted(p.name for p in (out / "real/frames/b").iterdir()) == ["000.png", "002.png", "005.png"]
    assert not (out / ".faces/tmp").exists() and report_of(out)["summary"]["videos"] == 3
    with pytest.raises(ConfigError, match="frames 3 -> 4"):
        extract_faces("uadfv", root, out, Settings(frames=4), workers=0, progress=False)


def test_a_run_killed_for_real_resumes_where_it_stopped(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root, out = tmp_path / "videos", tmp_path / "UADFV"
    frames, _ = astronaut_clip(16, 128)
    for n in range(4):
        write_video(root / f"real/{n}.mp4", frames[n:n + 12])
    command = [sys.executable, "-m", "bench", "data", "faces", "uadfv", str(root), "--out", str(out),
               "--workers", "0", "--frames", "8", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / ".faces/done").rglob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.name for p in (out / ".faces/done/real").glob("*.json")}
    assert before  # at least one video finished before the kill
    # The report on disk says that the run did not finish; read, it also counts what the kill left finished.
    assert report_of(out)["planned"] == 4 and report_of(out)["pending"]
    left = [f"real/{n}.mp4" for n in range(4) if f"{n}.mp4.json" not in before]
    seen = read_report(out)
    assert seen["pending"] == left and seen["summary"]["videos"] == len(before) == 4 - seen["summary"]["pending"]
    assert f"{len(left)} of 4 planned videos" in describe(out)[0] if left else "INCOMPLETE" not in describe(out)[0]
    summary = extract_faces("uadfv", root, out, Settings(frames=8), workers=0, progress=False)
    assert summary.skipped == len(before) and summary.extracted == 4 - len(before)
    assert summary.totals["ok"] == 4 and summary.totals["pending"] == 0 and not (out / ".faces/tmp").exists()
    assert all(len(list((out / f"real/frames/{n}").iterdir())) == 8 for n in range(4))


def crash_on_b(job: Job, video_root: Path, out: Path) -> dict:
    """A worker that dies on one video, as FFmpeg might on a damaged file."""
    if job.video == "real/b.mp4":
        os._exit(1)
    return {**new_record(job), "sampled": 1}


def test_a_video_that_kills_its_worker_is_recorded_and_the_others_finish(tmp_path):
    jobs = [Job(f"real/{n}.mp4", f"real/frames/{n}", f"real/landmarks/{n}") for n in "abcd"]
    records = []
    _in_pool(jobs, (tmp_path, tmp_path), Settings(), 2, records.append, work=crash_on_b)
    by_video = {r["video"]: r for r in records}
    assert sorted(by_video) == [j.video for j in jobs] and len(records) == 4  # each once
    assert by_video["real/b.mp4"]["status"] == "failed"
    assert f"{tmp_path / 'real/b.mp4'} crashed the extraction process" in by_video["real/b.mp4"]["error"]
    assert all(by_video[f"real/{n}.mp4"]["status"] == "ok" for n in "acd")


# -- landmarks -------------------------------------------------------------------------------------
def test_landmarks_without_their_package_is_one_clear_error(tmp_path, monkeypatch):
    import sys

    frames, _ = astronaut_clip(4, 128)
    write_video(tmp_path / "v/real/a.mp4", frames)
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ConfigError, match="face-recognition-models"):
        extract_faces("uadfv", tmp_path / "v", tmp_path / "out", Settings(landmarks=5), workers=0)
    assert not (tmp_path / "out").exists()


def test_landmarks_are_stored_beside_the_frames_in_crop_pixels(tmp_path):
    pytest.importorskip("face_recognition_models")
    frames, _ = astronaut_clip(4, 128)
    write_video(tmp_path / "v/real/a.mp4", frames)
    extract_faces("uadfv", tmp_path / "v", tmp_path / "out", Settings(frames=2, landmarks=5), workers=0,
                  progress=False)
    points = [np.load(p) for p in sorted((tmp_path / "out/real/landmarks/a").glob("*.npy"))]
    assert len(points) == 2 and all(p.shape == (5, 2) and p.dtype == np.float32 for p in points)
    assert all(((p > 0) & (p < 256)).all() for p in points)
    assert report_of(tmp_path / "out")["landmarks"]["points"] == 5
