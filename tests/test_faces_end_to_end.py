"""From videos to a run: ``bench data faces`` on an FF++-shaped download, ``bench data index``, ``bench data verify``
and ``bench run`` of a protocol derived from ``cross_domain`` with the FF++ sources only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.data.faces.synthetic import astronaut_clip, write_video
from bench.data.verify import verify_protocol
from bench.data.verify_report import format_report, problems
from bench.protocol import protocol_files

PAIRS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
FRAMES = 8  # per video; 4 are extracted


def ffpp_download(root: Path) -> int:
    """6 real and 24 fake videos of the moving astronaut (each a different stretch of one clip)."""
    names = []
    for split, pairs in PAIRS.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
        for a, b in pairs:
            names += [f"original_sequences/youtube/c23/videos/{v}.mp4" for v in (a, b)]
            names += [f"manipulated_sequences/{m}/c23/videos/{v}.mp4" for m in METHODS for v in (f"{a}_{b}", f"{b}_{a}")]
    frames, _ = astronaut_clip(len(names) + FRAMES, 128)
    for k, name in enumerate(names):
        write_video(root / name, frames[k:k + FRAMES])
    return len(names)


def ffpp_only_protocol(directory: Path) -> Path:
    """``cross_domain`` with the FF++ source, splits and test set only."""
    spec = yaml.safe_load(protocol_files()["cross_domain"].read_text())
    spec.update(name="cross_domain_ffpp", sources={"ffpp": spec["sources"]["ffpp"]},
                test={"ffpp": spec["test"]["ffpp"]}, groups={"in_domain": ["ffpp"]}, primary="auc@in_domain")
    path = directory / "cross_domain_ffpp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
def test_videos_to_faces_to_index_to_run(tmp_path, capsys):
    download, data_root = tmp_path / "download/FaceForensics++", tmp_path / "data"
    n_videos = ffpp_download(download)
    out = data_root / "FaceForensics++"
    main(["data", "faces", "ffpp", str(download), "--out", str(out), "--frames", "4", "--workers", "2",
          "--no-progress"])
    printed = capsys.readouterr().out
    assert f"faces: {n_videos} videos" in printed and "0 failed" in printed and "2 worker(s)" in printed
    assert (out / "splits/train.json").is_file()  # copied beside the frames for the indexer
    main(["data", "index", "ffpp", str(out)])
    printed = capsys.readouterr().out
    assert f"faces report: {out / 'faces_report.json'}: {n_videos} videos, 0 failed" in printed
    protocol = ffpp_only_protocol(tmp_path)
    report = verify_protocol(protocol, data_root, hash_files=False)
    assert not problems(report), format_report(report)
    assert report.face_reports[0].startswith(f"{out / 'faces_report.json'}: {n_videos} videos")
    # 4 frames per video where the protocol keeps 32: reported as short, as for any extracted data.
    assert {(n, k) for _, _, n, k in report.short_videos} == {(4, 32)}
    assert "Face extraction reports" in format_report(report)
    main(["run", "--protocol", str(protocol), "--detector", "clip_linear", "--data-root", str(data_root),
          "--out", str(tmp_path / "runs"), "--limit", "4", "-o", "backbone=timm:tf_efficientnet_lite0@imagenet-offline",
          "-o", "image_size=64"])
    printed = capsys.readouterr().out
    assert "cross_domain_ffpp" in printed and "PARTIAL" in printed
    results = json.loads(next((tmp_path / "runs").rglob("results.json")).read_text())
    assert 0.0 <= results["metrics"]["ffpp"]["auc"] <= 1.0
