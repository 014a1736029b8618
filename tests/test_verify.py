"""Tests for ``bench data verify``: counts, unreadable files, duplicates, short videos, bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from images import BAD_KINDS, image_bytes, write_bad

from bench.data.verify import verify_protocol
from bench.data.verify_report import format_report, problems

PNG = image_bytes((8, 8), seed=3)

PROTOCOL = """\
name: {name}
version: 1
description: verify test
sources:
  data: {{type: manifest, path: {manifest}, about: {{dataset: Mini, expected: {expected}}}}}
train: {{source: data, split: train{fpg}}}
val: {{source: data, split: val{fpg}, select: "best:auc"}}
test:
  t: {{source: data, split: test{fpg}}}
metrics: [auc]
primary: auc@t
"""


def write_protocol(tmp_path: Path, manifest: str = "mini/index.csv", fpg: int | None = None,
                   expected: str = "{unit: images, test: {real: 2, fake: 5}}", name: str = "mini") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(PROTOCOL.format(name=name, manifest=manifest, expected=expected,
                                    fpg=f", frames_per_group: {fpg}" if fpg else ""))
    return path


def unique_png(i: int) -> bytes:
    # Bytes after IEND are ignored by decoders: a valid image with a distinct hash, written fast.
    return PNG + i.to_bytes(4, "little")


def write_manifest(root: Path, entries: list[tuple[str, int, str, str]], data: dict[str, bytes]) -> None:
    """entries: (path, label, split, group); data: path -> bytes (default: a unique valid PNG)."""
    base = root / "mini"
    lines = ["path,label,split,subset,group"]
    for i, (path, label, split, group) in enumerate(entries):
        lines.append(f"{path},{label},{split},mini,{group}")
        if not path.startswith(".."):
            (base / path).parent.mkdir(parents=True, exist_ok=True)
            (base / path).write_bytes(data.get(path, unique_png(i)))
    base.mkdir(parents=True, exist_ok=True)
    (base / "index.csv").write_text("\n".join(lines) + "\n")


def basic_entries(n_test: int = 2) -> list[tuple[str, int, str, str]]:
    out = []
    for split in ("train", "val"):
        out += [(f"{split}/r{i}.png", 0, split, "") for i in range(2)]
        out += [(f"{split}/f{i}.png", 1, split, "") for i in range(2)]
    out += [(f"test/r{i}.png", 0, "test", "") for i in range(n_test)]
    out += [(f"test/f{i}.png", 1, "test", "") for i in range(n_test)]
    return out


def test_clean_data_is_usable(tmp_path):
    write_manifest(tmp_path, basic_entries(), {})
    seen = []
    report = verify_protocol(write_protocol(tmp_path), tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert problems(report) == []
    assert report.files_checked == 12 and seen[-1] == (12, 12)
    assert [(s.name, s.n_real, s.n_fake) for s in report.splits] == [("train", 2, 2), ("val", 2, 2), ("test/t", 2, 2)]
    assert [(c.key, c.expected, c.found) for c in report.counts] == [("real", 2, 2), ("fake", 5, 2)]
    text = format_report(report)
    assert "fake: 2 images (published 5)  <-- differs" in text and "Data is usable." in text


def test_bad_files_and_duplicates(tmp_path):
    entries = basic_entries()
    bad = {f"test/bad_{kind}{suffix}": kind for kind, suffix in BAD_KINDS.items()}
    entries += [(path, 1, "test", "") for path in bad]
    entries += [("test/copy_of_r0.png", 1, "test", ""), ("test/gone.png", 0, "test", "")]
    write_manifest(tmp_path, entries, {"test/copy_of_r0.png": unique_png(8)})  # r0 is entry 8
    for path, kind in bad.items():
        write_bad(tmp_path / "mini" / path, kind)
    (tmp_path / "mini/test/gone.png").unlink()
    report = verify_protocol(write_protocol(tmp_path), tmp_path)
    reasons = " | ".join(r for _, _, r in report.bad_files)
    assert len(report.bad_files) == len(BAD_KINDS) + 1
    assert "zero-byte" in reasons and "cannot be decoded" in reasons and "does not exist" in reasons
    assert report.duplicates == [("data", "test/r0.png", "data", "test/copy_of_r0.png", False)] or \
        report.duplicates == [("data", "test/copy_of_r0.png", "data", "test/r0.png", False)]
    found = problems(report)
    assert len(found) == len(BAD_KINDS) + 2 and "different labels" in found[-1]
    assert "problem(s) make the data unusable" in format_report(report)


def test_check_images_off_still_finds_missing_and_empty(tmp_path):
    entries = basic_entries() + [("test/empty.png", 1, "test", "")]
    write_manifest(tmp_path, entries, {"test/empty.png": b""})
    report = verify_protocol(write_protocol(tmp_path), tmp_path, check_images=False)
    assert next(r for _, _, r in report.bad_files).endswith("is a zero-byte file")


def test_paths_leaving_the_data_root_are_errors(tmp_path):
    write_manifest(tmp_path, basic_entries() + [("../../etc/passwd.png", 0, "test", "")], {})
    report = verify_protocol(write_protocol(tmp_path), tmp_path)
    assert any("leaves the image root" in e for e in report.errors)
    assert problems(report)
    report = verify_protocol(write_protocol(tmp_path, manifest="../outside/index.csv", name="esc"), tmp_path)
    assert any("leaves the data root" in e for e in problems(report))


def test_missing_data_is_reported_not_raised(tmp_path):
    report = verify_protocol(write_protocol(tmp_path), tmp_path / "empty")
    assert len(report.errors) == 3 and "index.csv" in report.errors[0] and "Mini" in report.errors[0]


def test_short_videos_and_video_counts(tmp_path):
    entries = []
    for split in ("train", "val", "test"):
        for label, name in ((0, "real"), (1, "fake")):
            n = 2 if (split, label) == ("test", 1) else 5
            entries += [(f"{split}/{name}/v/{i:03d}.png", label, split, f"mini/{split}/{name}/v") for i in range(n)]
    write_manifest(tmp_path, entries, {})
    report = verify_protocol(write_protocol(tmp_path, fpg=4, expected="{unit: videos, test: {all: 2}}"), tmp_path)
    assert report.short_videos == [("test/t", "mini/test/fake/v", 2, 4)]
    test = report.splits[-1]
    assert (test.n_real, test.n_fake, test.videos_real, test.videos_fake) == (4, 2, 1, 1)
    assert [(c.key, c.found) for c in report.counts] == [("all", 2)]
    assert problems(report) == []


def _peak(tmp_path: Path, n: int) -> int:
    proto = tmp_path / "mini.yaml"
    if not proto.exists():
        write_manifest(tmp_path, basic_entries(n), {})
        write_protocol(tmp_path)
    tracemalloc.start()
    verify_protocol(proto, tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("size", [(64, 64)])
def test_memory_does_not_grow_with_file_contents(tmp_path, size):
    global PNG
    old, PNG = PNG, image_bytes(size, seed=5)  # ~12 kB per file: keeping contents would cost ~25 MB
    try:
        # min of two runs: a first call pays one-off allocations (imports, caches) that are not per file.
        small = min(_peak(tmp_path / "small", 100) for _ in range(2))
        large = min(_peak(tmp_path / "large", 1000) for _ in range(2))
    finally:
        PNG = old
    # ~2000 vs ~200 files: the tables and the digest map grow by a few hundred bytes per file
    # (measured ~0.3 MB here); keeping file bytes would add over 20 MB.
    assert large - small < 2_000_000, (small, large)


def test_verdict_names_every_problem_or_counts_them_and_writes_the_list(tmp_path):
    from bench.data.verify_report import failure_message, problems_by_kind

    entries = basic_entries()
    missing = [f"test/gone{i}.png" for i in range(3)]
    entries += [(path, 1, "test", "") for path in missing]
    write_manifest(tmp_path, entries, {})
    for path in missing:
        (tmp_path / "mini" / path).unlink()
    report = verify_protocol(write_protocol(tmp_path), tmp_path)
    message = failure_message(report, tmp_path)
    assert message.startswith("3 problem(s) make this data unusable: ")
    assert all(path in message for path in missing)
    # More than a handful: counts per kind, and the full list in a file named in the sentence.
    entries += [(f"test/gone{i}.png", 1, "test", "") for i in range(3, 9)]
    entries += [("test/copy.png", 1, "test", "")]
    write_manifest(tmp_path, entries, {"test/copy.png": unique_png(8)})  # same bytes as test/r0.png (real)
    for i in range(9):
        (tmp_path / f"mini/test/gone{i}.png").unlink()
    report = verify_protocol(write_protocol(tmp_path), tmp_path)
    assert {k: len(v) for k, v in problems_by_kind(report).items()} == {
        "unreadable files": 9, "identical files with different labels": 1}
    message = failure_message(report, tmp_path)
    listing = tmp_path / "verify-mini-problems.txt"
    assert message == (f"10 problem(s) make this data unusable (9 unreadable files, 1 identical files with "
                       f"different labels); the full list is in {listing.resolve()}.")
    text = listing.read_text()
    assert all(f"gone{i}.png" in text for i in range(9)) and "different labels" in text
    assert format_report(report).count("does not exist") == 9  # the report itself lists them all
    assert failure_message(verify_protocol(write_protocol(tmp_path, name="ok"), tmp_path / "x")) is not None


def test_report_counts_conversions_and_files_left_out(tmp_path):
    from images import write_image

    for split in ("train", "val", "test"):
        for label in ("0_real", "1_fake"):
            write_image(tmp_path / f"fs/{split}/s/{label}/a.png", mode="L" if split == "test" else "RGB")
    (tmp_path / "fs/test/s/1_fake/notes.txt").write_text("x")
    proto = tmp_path / "fs.yaml"
    proto.write_text(PROTOCOL.split("sources:")[0].format(name="fs") + """sources:
  data: {type: folder, root: fs}
train: {source: data, split: train}
val: {source: data, split: val, select: "best:auc"}
test:
  t: {source: data, split: test}
metrics: [auc]
primary: auc@t
""")
    report = verify_protocol(proto, tmp_path)
    assert report.conversions == {"grayscale": 2}
    assert report.ignored == {"test/t": {"extension '.txt' not read": ["data:test/s/1_fake/notes.txt"]}}
    text = format_report(report)
    assert "grayscale: 2" in text and "test/t: 1 extension '.txt' not read: data:test/s/1_fake/notes.txt" in text
