"""An interrupted ``bench data faces`` says so: the report counts and lists the planned videos never extracted
(``pending``), from the moment the run starts (a killed run leaves that report), and the command, ``describe``
(what ``bench data index`` and ``verify`` print) and ``format_summary`` say the extraction is incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.faces import describe, format_summary, run
from bench.data.faces.report import REPORT_NAME
from bench.data.faces.synthetic import astronaut_clip, write_video

VIDEOS = ["real/a.mp4", "real/b.mp4", "real/c.mp4"]


def three_videos(root: Path) -> None:
    frames, _ = astronaut_clip(4, 128)
    for video in VIDEOS:
        write_video(root / video, frames)


def report_of(out: Path) -> dict:
    return json.loads((out / REPORT_NAME).read_text())


def test_an_interrupted_extraction_reports_its_pending_videos_and_fails_the_command(tmp_path, monkeypatch, capsys):
    root, out = tmp_path / "videos", tmp_path / "UADFV"
    three_videos(root)
    real, on_disk = run.process_video, []

    def interrupted_at_b(job, *args):
        on_disk.append(report_of(out))  # what a kill at this moment would leave
        if job.video == "real/b.mp4":
            raise KeyboardInterrupt
        return real(job, *args)

    monkeypatch.setattr(run, "process_video", interrupted_at_b)
    args = ["data", "faces", "uadfv", str(root), "--out", str(out), "--workers", "0", "--frames", "2", "--no-progress"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and "interrupted" in err and "2 of 3 planned videos" in err and "Traceback" not in err
    # Before any video is done, the report already says that all are pending.
    assert on_disk[0]["planned"] == 3 and on_disk[0]["summary"]["pending"] == 3 and on_disk[0]["pending"] == VIDEOS
    report = report_of(out)
    assert report["planned"] == 3 and report["summary"]["videos"] == 1 and report["summary"]["failed"] == 0
    assert report["summary"]["pending"] == 2 and report["pending"] == ["real/b.mp4", "real/c.mp4"]
    lines = describe(out)
    assert "INCOMPLETE" in lines[0] and "2 of 3 planned videos" in lines[0]
    assert [line.strip() for line in lines[1:]] == ["pending: real/b.mp4", "pending: real/c.mp4"]
    # The same command again finishes the two and the report is complete.
    monkeypatch.setattr(run, "process_video", real)
    summary = run.extract_faces("uadfv", root, out, run.Settings(frames=2), workers=0, progress=False)
    assert (summary.extracted, summary.skipped, summary.totals["pending"]) == (2, 1, 0)
    assert report_of(out)["pending"] == [] and "INCOMPLETE" not in describe(out)[0]
    assert "INCOMPLETE" not in format_summary(summary)


def test_the_summary_of_an_interrupted_run_and_a_crash_say_what_is_left(tmp_path, monkeypatch):
    root, out = tmp_path / "videos", tmp_path / "UADFV"
    three_videos(root)

    def stop(job, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "process_video", stop)
    with pytest.raises(KeyboardInterrupt) as stopped:  # still an interrupt for Python callers
        run.extract_faces("uadfv", root, out, run.Settings(frames=2), workers=0, progress=False)
    text = format_summary(stopped.value.summary)
    assert text.startswith("faces: INCOMPLETE") and "3 of 3 planned videos" in text

    def crash(job, *args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(run, "process_video", crash)
    with pytest.raises(RuntimeError) as crashed:
        run.extract_faces("uadfv", root, out, run.Settings(frames=2), workers=0, progress=False)
    assert any("3 of 3 planned videos" in note for note in crashed.value.__notes__)
    assert report_of(out)["summary"]["pending"] == 3


def test_index_of_an_extraction_stopped_before_any_fake_says_incomplete(tmp_path, monkeypatch, capsys):
    from conftest import run_cli

    root, out = tmp_path / "FaceForensics++", tmp_path / "out"
    frames, _ = astronaut_clip(4, 128)
    for video in ("original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                  "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"):
        write_video(root / video, frames)
    for split in ("train", "val", "test"):
        (root / "splits").mkdir(exist_ok=True)
        (root / f"splits/{split}.json").write_text(json.dumps([["000", "001"]] if split == "train" else []))
    real = run.process_video

    def stop_at_the_first_fake(job, *args):
        if job.video.startswith("manipulated_sequences"):
            raise KeyboardInterrupt
        return real(job, *args)

    monkeypatch.setattr(run, "process_video", stop_at_the_first_fake)
    code, _, err = run_cli(["data", "faces", "ffpp", str(root), "--out", str(out), "--workers", "0",
                            "--frames", "2", "--no-progress"], capsys)
    assert code == 2 and "interrupted" in err
    code, _, err = run_cli(["data", "index", "ffpp", str(out)], capsys)
    assert code == 2 and "INCOMPLETE: 1 of 3 planned videos" in err and str(out / REPORT_NAME) in err
    assert "holds no manipulation method" not in err and "Traceback" not in err
