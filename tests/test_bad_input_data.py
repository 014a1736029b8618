"""Bad input through the CLI, part 2: images, folders, manifests, overlapping splits, dataset indexing.

Refusals go through the ``refused`` fixture (exit 2, one ``error:`` line, no traceback, nothing
written outside ``--out``); conversions and left-out files are read back from ``results.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from bad_input import folder_protocol, run_args
from images import write_bad, write_image
from PIL import Image

from bench.cli import main


def no_finished_runs(root) -> None:
    assert not list(Path(root).glob("**/results.json")), "a failed run left a results.json behind"


def _run_folder(tmp_path, proto, root, *extra):
    main([*run_args(proto, root, tmp_path / "runs"), "--batch-size", "4", *extra])
    (results,) = list((tmp_path / "runs").glob("*/*/*/results.json"))
    return json.loads(results.read_text())


# -- files that cannot be used ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["zero_byte", "truncated_png", "random_bytes"])
def test_unreadable_images_stop_the_run_naming_the_file(refused, tmp_path, kind):
    proto, root = folder_protocol(tmp_path)
    write_bad(root / "ds" / "test" / "1_fake" / "2.png", kind)
    refused(run_args(proto, root, tmp_path / "runs"), r"1_fake/2\.png.*--skip-bad-images")
    no_finished_runs(tmp_path)


def test_a_text_file_with_an_image_extension_is_an_unreadable_image(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    (root / "ds" / "val" / "0_real" / "notes.png").write_text("this is not an image\n")
    refused(run_args(proto, root, tmp_path / "runs"), r"notes\.png")


def test_one_class_test_split_and_missing_data_root(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    for path in (root / "ds" / "test" / "0_real").iterdir():
        path.unlink()
    refused(run_args(proto, root, tmp_path / "runs"), r"0 real and 4 fake")
    refused(run_args(proto, tmp_path / "nowhere", tmp_path / "runs"), r"nowhere")
    no_finished_runs(tmp_path)


def _manifest_protocol(tmp_path, rows: str) -> tuple[Path, Path]:
    root = tmp_path / "data"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(root / name, size=(40, 40))
    (root / "index.csv").write_bytes(b"path,label,split\n" + rows.encode("utf-8", "surrogateescape"))
    proto = tmp_path / "manifestbad.yaml"
    proto.write_text("""name: manifestbad
version: 1
description: a manifest with a bad row
sources:
  m: {type: manifest, path: index.csv}
train: {source: m, split: train}
val: {source: m, split: val}
test:
  t: {source: m, split: test}
metrics: [auc]
primary: auc@t
""")
    return proto, root


@pytest.mark.parametrize("rows, match", [
    ("a.png,maybe,train\n", r"row 1 of .*index\.csv has label 'maybe'"),
    ("a.png,0,train\nb\x00x.png,1,train\n", r"row 2 of .*index\.csv has a path that contains a NUL byte"),
    ("a.png,0,train\n" + "d" * 300 + ".png,1,val\n", r"row 2 of .*has a path that has a name of 304 bytes"),
    ("../outside.png,0,train\n", r"row 1 of .*has path '\.\./outside\.png', which leaves the image root"),
])
def test_bad_manifest_rows_are_named(refused, tmp_path, rows, match):
    proto, root = _manifest_protocol(tmp_path, rows)
    refused(run_args(proto, root, tmp_path / "runs"), match)


# -- folders: links, label folders, names ---------------------------------------------------------------
def test_symlinks_loops_escapes_and_files_reached_twice_are_refused(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    fake = root / "ds" / "train" / "1_fake"
    (fake / "loop").symlink_to("..")
    refused(run_args(proto, root, tmp_path / "runs"), r"loop is a symbolic link to .*on its own path")
    (fake / "loop").unlink()
    outside = tmp_path / "elsewhere"
    for i in range(3):
        write_image(outside / f"x{i}.png", size=(40, 40), seed=50 + i)
    (fake / "more").symlink_to(outside)  # a directory link leading out of the data root
    refused(run_args(proto, root, tmp_path / "runs"), r"1_fake/more is a symbolic link to .*elsewhere, outside the "
            r"data root.*allow_outside_root: true")
    (fake / "more").unlink()
    (fake / "one.png").symlink_to(outside / "x0.png")  # a file link too
    refused(run_args(proto, root, tmp_path / "runs"), r"1_fake/one\.png is a symbolic link to .*outside the data root")
    (fake / "one.png").unlink()
    escape = tmp_path / "escape.yaml"
    escape.write_text(proto.read_text().replace("root: ds,", "root: ../../etc,").replace("folderbad", "escape"))
    refused(run_args(escape, root, tmp_path / "runs"), r"leaves the data root")
    (root / "ds" / "test" / "1_fake" / "again.png").symlink_to(root / "ds" / "test" / "1_fake" / "0.png")
    refused(run_args(proto, root, tmp_path / "runs"), r"reached twice")
    no_finished_runs(tmp_path)


def test_a_link_outside_the_root_is_read_and_recorded_when_the_source_allows_it(tmp_path):
    proto, root = folder_protocol(tmp_path, name="allowed", allow_outside_root="true")
    for i in range(2):
        write_image(tmp_path / "elsewhere" / f"x{i}.png", size=(40, 40), seed=70 + i)
    (root / "ds" / "train" / "1_fake" / "more").symlink_to(tmp_path / "elsewhere")
    result = _run_folder(tmp_path, proto, root)
    assert result["data"]["train"]["n_fake"] == 6
    assert any("lead outside the data root (e.g. 1_fake/more" in note or "train/1_fake/more ->" in note
               for note in result["data"]["train"]["notes"]), result["data"]["train"]["notes"]


def test_a_manifest_file_reached_through_a_link_outside_the_root_is_refused(refused, tmp_path):
    proto, root = _manifest_protocol(tmp_path, "a.png,0,train\nb.png,1,train\nc.png,0,val\nd.png,1,val\n"
                                               "a2.png,0,test\nlinked/b.png,1,test\n")
    write_image(root / "a2.png", size=(40, 40), seed=8)  # its own pixels: a copy of a.png is not held out
    write_image(tmp_path / "elsewhere" / "b.png", size=(40, 40), seed=9)
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    refused(run_args(proto, root, tmp_path / "runs"), r"linked/b\.png resolves to .*elsewhere/b\.png, outside the "
            r"data root")


def test_an_image_below_label_folders_of_both_classes_is_refused(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    write_image(root / "ds" / "train" / "1_fake" / "sub" / "0_real" / "x.png", size=(40, 40))
    refused(run_args(proto, root, tmp_path / "runs"), r"train/1_fake/sub/0_real/x\.png lies below label directories "
            r"of both classes \(1_fake, 0_real\)")


def test_directories_named_like_images_and_format_mismatches_are_recorded(tmp_path):
    proto, root = folder_protocol(tmp_path)
    (root / "ds" / "test" / "1_fake" / "000.png").mkdir()  # a directory, not an image
    (root / "ds" / "test" / "README.txt").write_text("notes at a layout level\n")
    tiff = Image.new("RGB", (40, 40), (10, 200, 30))
    tiff.save(root / "ds" / "test" / "0_real" / "tiff.jpg", format="TIFF")  # a TIFF named .jpg
    tiff.save(root / "ds" / "test" / "1_fake" / "png.jpg", format="PNG")  # a PNG named .jpg
    result = _run_folder(tmp_path, proto, root)
    left_out = result["data"]["t"]["left_out_files"]
    assert left_out.get("directory named like an image file") == 1, left_out
    assert left_out.get("file outside the layout (in a label level)") == 1, left_out
    assert result["data"]["t"]["conversions"] == {"format_mismatch": 2}
    assert result["data"]["t"]["n"] == 10


# -- test sets that are not held out ---------------------------------------------------------------------
def test_a_test_set_reading_the_train_split_is_refused_by_validate_and_run(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    same = tmp_path / "sametest.yaml"
    same.write_text(proto.read_text().replace("name: folderbad", "name: sametest")
                    .replace("t: {source: ds, split: test}", "t: {source: ds, split: train}"))
    refused(["validate", str(same)], r"sametest\.yaml line 9, key 'test\.t': test set 't' reads the images of train")
    refused(run_args(same, root, tmp_path / "runs"), r"reads the images of train .*mark it `sanity: true`")
    marked = tmp_path / "sanity.yaml"
    marked.write_text(same.read_text().replace("name: sametest", "name: sanity")
                      .replace("split: train}\nmetrics", "split: train, sanity: true}\nmetrics"))
    refused(["validate", str(marked)], r"primary 'auc@t' would rank on 't', a sanity test set")


def with_copy_test(proto, name: str, folder: str, split: str):
    """``proto`` renamed ``name``, with a folder source ``copy`` ({folder}) and a test set ``u`` of its ``split``."""
    out = proto.with_name(f"{name}.yaml")
    out.write_text(proto.read_text().replace("name: folderbad", f"name: {name}")
                   .replace("sources:\n", f"sources:\n  copy: {{type: folder, {folder}}}\n")
                   .replace("t: {source: ds, split: test}", f"t: {{source: ds, split: test}}\n  u: {{source: copy, "
                            f"split: {split}}}"))
    return out


def test_a_second_source_over_the_train_files_is_caught_with_the_data(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    twin = with_copy_test(proto, "twin", 'root: ./ds/, layout: "{split}/{label}"', "train")
    refused(run_args(twin, root, tmp_path / "runs"), r"Test set 'u' shares 8 of its 8 images with train \(first: "
            r"copy:train/0_real/0\.png is the same file as ds:train/0_real/0\.png\)")
    no_finished_runs(tmp_path)


def test_a_copied_train_folder_used_as_a_test_set_is_refused_by_its_content(refused, tmp_path):
    proto, root = folder_protocol(tmp_path)
    shutil.copytree(root / "ds" / "train", root / "copied")  # new inodes, other paths: the same bytes
    copy = with_copy_test(proto, "copy", 'root: copied, layout: "{label}"', "test")
    refused(run_args(copy, root, tmp_path / "runs"), r"8 of the 8 images of test set 'u' are copies of train images \(first: "
            r"copy:0_real/0\.png has the content of ds:train/0_real/0\.png: same size, first and last 64 KiB\), so it "
            r"is not held out")
    no_finished_runs(tmp_path)


def test_content_keys_see_both_ends_of_a_file(tmp_path):
    from bench.data.identity import content_key

    body = bytes(range(256)) * 1024  # 256 KiB
    (tmp_path / "a").write_bytes(body)
    (tmp_path / "b").write_bytes(body)
    (tmp_path / "c").write_bytes(body[:-1] + b"x")  # the last byte differs
    (tmp_path / "d").write_bytes(body[:100])  # a short file is hashed whole
    keys = {name: content_key(tmp_path / name) for name in "abcd"}
    assert keys["a"] == keys["b"] != keys["c"] and keys["d"].startswith("100:") and len(set(keys.values())) == 3


def test_shipped_protocols_validate_with_their_in_domain_sets(capsys):
    main(["validate"])
    out = capsys.readouterr().out
    assert "ok  cross_domain.yaml: cross_domain v1, 6 test sets, primary auc@unseen" in out  # FF++ test split: held out
    # GenImage selects on a held-out tenth of its train folder, so its in-domain test set is held out too.
    assert "ok  genimage.yaml: genimage v2, 8 test sets, primary acc@all" in out


# -- dataset indexing: hints that name the right folder ----------------------------------------------------
def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.mark.parametrize("layout, build, root, match, never", [
    ("univfd_diffusion", ["CNNDetection/train/car/0_real/a.png", "CNNDetection/test/biggan/1_fake/a.png",
                          "CNNDetection/test/progan/car/1_fake/a.png"], "CNNDetection",
     r"CNNDetection looks like a forensynths dataset: use `bench data index forensynths .*CNNDetection`",
     "pass it as ROOT"),
    ("genimage", ["GenImage/ADM/train/ai/a.png", "GenImage/ADM/val/nature/n.png", "CNNDetection/test/x/0_real/a.png"],
     ".", r"holds no GenImage generator folder.*GenImage looks like the dataset folder: pass it as ROOT",
     "move it out"),
    ("ffpp", ["FaceForensics++/original_sequences/youtube/c23/frames/000/0.png"], ".",
     r"FaceForensics\+\+ looks like the dataset folder: pass it as ROOT", "CNNDetection"),
    ("celebdf", ["Celeb-DF-v2/Celeb-real/frames/id0/0.png", "Celeb-DF-v2/Celeb-synthesis/frames/id0_1/0.png",
                 "Celeb-DF-v2/List_of_testing_videos.txt"], ".",
     r"Celeb-DF-v2 looks like the dataset folder: pass it as ROOT", "forensynths"),
])
def test_index_hints_name_the_dataset_folder(refused, tmp_path, monkeypatch, layout, build, root, match, never):
    for rel in build:
        _touch(tmp_path / "data" / rel)
    monkeypatch.chdir(tmp_path / "data")
    line = refused(["data", "index", layout, root], match)
    assert never not in line


# -- permissions, as a user who cannot read everything -----------------------------------------------------
_AS_NOBODY = textwrap.dedent("""
    import os, sys
    import PIL.Image
    import bench.api, bench.cli, bench.data.sources.folder, bench.run.runner  # imported while still root
    PIL.Image.init()
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    from bench.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.slow  # a child process per case (it imports torch before dropping privileges)
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to nobody")
@pytest.mark.parametrize("what, match", [
    ("file", r"1_fake/2\.png cannot be read \(Permission denied\)"),
    ("directory", r"directory .*train/1_fake/sub cannot be listed \(Permission denied\); check its permissions"),
    ("manifest", r"index\.csv cannot be read \(Permission denied\); check its permissions"),
])
def test_what_a_user_cannot_read_is_named(tmp_path, what, match):
    # The interpreter and the test's tmp_path may be unreadable for nobody: a world-readable directory of
    # its own, and a child that imports what it needs before dropping privileges.
    base = Path(tempfile.mkdtemp(prefix="bench-nobody-"))
    try:
        base.chmod(0o755)
        if what == "manifest":
            proto, root = _manifest_protocol(base, "a.png,0,train\nb.png,1,train\nc.png,0,val\nd.png,1,val\n")
            (root / "index.csv").chmod(0o600)
        else:
            proto, root = folder_protocol(base)
            if what == "file":
                (root / "ds" / "test" / "1_fake" / "2.png").chmod(0o600)  # owned by root: nobody cannot open it
            else:
                write_image(root / "ds" / "train" / "1_fake" / "sub" / "x.png", size=(40, 40))
                (root / "ds" / "train" / "1_fake" / "sub").chmod(0o700)
        out = base / "runs"
        out.mkdir()
        os.chown(out, 65534, 65534)
        env = {**os.environ, "HOME": str(out), "BENCH_CACHE": str(out / "cache"), "XDG_CACHE_HOME": str(out),
               "HF_HOME": str(out / "hf"), "TORCH_HOME": str(out / "torch"), "MPLCONFIGDIR": str(out)}
        done = subprocess.run([sys.executable, "-c", _AS_NOBODY, *run_args(proto, root, out)],
                              capture_output=True, text=True, env=env, cwd=base, timeout=600,
                              check=False)
        lines = [line for line in done.stderr.splitlines() if line.strip() and "%|" not in line]
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert re.search(match, lines[0]), lines[0]
        assert not list(out.glob("*/*/*/results.json"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
