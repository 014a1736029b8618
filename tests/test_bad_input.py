"""Bad input through the CLI, part 1: settings, options, names, YAML files and plugins.

Every case runs ``bench`` in-process and checks, through the ``refused`` fixture (``bad_input.py``),
exit 2, one ``error:`` line naming the problem, no traceback, and nothing written outside ``--out``.
The other parts: ``test_bad_input_data.py`` (images, folders, manifests, datasets),
``test_bad_input_training.py`` (detectors, divergence, full disk) and ``test_bad_input_resume.py``
(resume, locks, submitted predictions).
"""

from __future__ import annotations

import os

import pytest
from bad_input import TINY, run_args
from conftest import TINY_PROTOCOL


# -- settings and options ------------------------------------------------------------------------
@pytest.mark.parametrize("extra, match", [
    (["-o", "epochs=0"], r"'epochs'.*is 0; use a whole number >= 1"),
    (["-o", "image_size=0"], r"'image_size'.*positive number of pixels"),
    (["-o", "c_values=[]"], r"'c_values'.*empty list"),
    (["-o", "lr=.nan"], r"'lr'.*finite number"),
    (["-o", "lr=-1"], r"'lr'.*positive finite number"),
    (["-o", "c_value=[1.0]"], r"Unknown setting 'c_value'.*Did you mean 'c_values'"),
    (["-o", "lr"], r"not key=value"),
    (["-o", "probe=ridge"], r"probe must be 'logistic' or 'sgd'"),
    (["-o", "epochs=" + "9" * 5000], r"-o epochs line 1: integer 9999.*has 5000 digits; integers must fit in 64 bits"),
    (["-o", "c_values={a: 1, a: 2}"], r"-o c_values line 1: key 'a' appears twice"),
    (["--batch-size", "0"], r"--batch-size must be a positive integer"),
    (["--batch-size", "99999999999999999999"], r"--batch-size must be a positive integer \(at most 2147483647\)"),
    (["-o", "image_size=100000"], r"'image_size'.*is 100000; use a positive number of pixels, at most 8192"),
    (["--perturb", "blur=1e30"], r"--perturb 'blur=1e30' is invalid: .*less than or equal to 1000"),
    (["--threads", "0"], r"--threads must be a positive integer"),
    (["--threads", "100000"], r"--threads 100000 is more than the \d+ core\(s\) this process may use; use at most"),
    (["--workers", "100000"], r"--workers 100000 is more than 4 loader processes per core"),
    (["--workers", "many"], r"--workers 'many' must be 'auto' or a whole number"),
    (["--seeds", ","], r"--seeds ',' must be comma-separated integers"),
    (["--seeds=-1"], r"--seeds -1 has seed -1, outside 0\.\.4294967295"),
    (["--seeds", "4294967296"], r"seed 4294967296, outside 0\.\.4294967295"),
    (["--seeds", "0,0"], r"--seeds 0,0 lists seed 0 twice"),
    (["--perturb", "jpeg=500"], r"--perturb 'jpeg=500' is invalid"),
    (["--eval-only"], r"--eval-only needs --checkpoint"),
    (["--precision", "fp16", "--cpu"], r"fp16 does not run on the CPU"),
])
def test_bad_settings_fail_before_any_work(refused, tiny_protocol, tmp_path, extra, match):
    refused(run_args(tiny_protocol, None, tmp_path / "runs") + extra, match)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_unknown_names_suggest_the_close_ones(refused, tiny_protocol, tmp_path):
    refused(["run", "--protocol", str(tiny_protocol), "--detector", "clip_linaer", "--out", str(tmp_path / "r")],
            r"Did you mean 'clip_linear'")
    refused(["run", "--protocol", "synthetic_universl", "--detector", "sam", "--out", str(tmp_path / "r")],
            r"synthetic_universal")


def test_precision_conflicting_with_the_launcher_is_refused(refused, tiny_protocol, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    refused(run_args(tiny_protocol, None, tmp_path / "r") + ["--precision", "no"],
            r"conflicts with the launcher's --mixed_precision bf16")


def test_unwritable_out_fails_before_the_run(refused, tiny_protocol, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    refused(run_args(tiny_protocol, None, blocker / "runs"), r"cannot be written under --out .*not a directory")


# -- names that become paths: run names, protocol and test-set names ---------------------------------
@pytest.mark.parametrize("name, match", [
    ("../../../../escaped", r"--run-name '\.\./\.\./\.\./\.\./escaped' contains a path separator"),
    ("a/b", r"contains a path separator"),
    ("..", r"--run-name '\.\.' is '\.\.', which names a directory"),
    (".", r"is '\.', which names a directory"),
    ("back\\slash", r"contains a path separator"),
    ("tab\tname", r"contains a NUL or control character"),
    ("x" * 300, r"is longer than 255 bytes"),
])
def test_a_run_name_that_would_leave_out_is_refused(refused, tiny_protocol, tmp_path, name, match):
    refused(run_args(tiny_protocol, None, tmp_path / "runs") + ["--run-name", name], match)
    assert not (tmp_path / "runs").exists()


def test_protocol_and_test_set_names_must_be_one_path_component(refused, tmp_path):
    dots = tmp_path / "...yaml"  # its stem is '..', so `name: ..` would match it
    dots.write_text(TINY_PROTOCOL.format(name=".."))
    refused(["validate", str(dots)], r"protocol name '\.\.' is '\.\.', which names a directory")
    bad_test = tmp_path / "badtest.yaml"
    bad_test.write_text(TINY_PROTOCOL.format(name="badtest").replace("  peaks_p4: {", '  "pe\\taks": {')
                        .replace("unseen: [blend_ellipse, peaks_p4]", 'unseen: [blend_ellipse, "pe\\taks"]'))
    refused(["validate", str(bad_test)], r"badtest\.yaml line \d+, key 'test\.pe\\taks': test set name .*control")


# -- YAML read with limits: protocols (and every other YAML through the same reader) --------------------
LAUGHS = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"] +
                   [f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi")])


@pytest.mark.parametrize("text, match", [
    (LAUGHS, r"bomb\.yaml line \d+: the document expands to more than 500,000 values"),
    ("name: " + "[" * 100 + "]" * 100, r"line 1: nesting is deeper than 64 levels"),
    ("name: x\nversion: " + "7" * 5000 + "\n", r"line 2: integer 7777.*has 5000 digits"),
    ("name: x\nversion: 18446744073709551616\n", r"line 2: integer 18446744073709551616 does not fit in 64 bits"),
    ("a: &a [1, *a]\n", r"line 1: alias \*a refers to a mapping or list that contains it"),
    ("name: bomb\nversion: 1\nversion: 2\n", r"line 3: key 'version' appears twice in one mapping \(lines 2 and 3\)"),
    ("name: bomb\nversion: [1\n", r"bomb\.yaml line \d+: not valid YAML"),
    ("x: 1\n" + "#" * (1 << 20), r"larger than 1,048,576 bytes|above the limit of 1,048,576"),
])
def test_hostile_yaml_is_refused_at_its_line(refused, tmp_path, text, match):
    bad = tmp_path / "bomb.yaml"
    bad.write_text(text)
    refused(["validate", str(bad)], match)


def test_binary_special_and_unknown_keys_in_protocol_files(refused, tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    refused(["validate", str(fifo)], r"pipe\.yaml is not a regular file")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00binary\n")
    refused(["validate", str(binary)], r"binary\.yaml is not UTF-8 text")
    extra = tmp_path / "extra.yaml"
    extra.write_text(TINY_PROTOCOL.format(name="extra") + "colour: blue\n")
    refused(["validate", str(extra)], r"colour")


def test_duplicate_keys_in_a_nested_mapping_name_both_lines(refused, tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text(TINY_PROTOCOL.format(name="dup").replace("budget: {max_epochs: 2}",
                                                              "budget:\n  max_epochs: 2\n  max_epochs: 50"))
    line = refused(["validate", str(dup)], r"dup\.yaml line (\d+): key 'max_epochs' appears twice")
    assert "line 20: key 'max_epochs' appears twice in one mapping (lines 19 and 20)" in line


@pytest.mark.parametrize("seeds, match", [
    ("[0, 0, 1]", r"lists seed 0 twice"),
    ("[0, -1]", r"has seed -1, outside 0\.\.4294967295"),
    ("[4294967296]", r"has seed 4294967296, outside"),
    ("[0, true]", r"valid integer"),
])
def test_protocol_seeds_are_checked_by_validate_and_all_seeds(refused, tmp_path, seeds, match):
    proto = tmp_path / "seeded.yaml"
    proto.write_text(TINY_PROTOCOL.format(name="seeded").replace("seeds: [0, 1]", f"seeds: {seeds}"))
    refused(["validate", str(proto)], r"seeded\.yaml line \d+, key 'seeds.*" + match)
    refused(run_args(proto, None, tmp_path / "runs") + ["--all-seeds"], match)
    assert not (tmp_path / "runs").exists()


def test_a_run_config_bomb_is_refused_on_resume(refused, tmp_path):
    run_dir = tmp_path / "runs" / "p" / "d" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "INCOMPLETE").write_text("started\n")
    (run_dir / "config.yaml").write_text(LAUGHS)
    refused(["run", "--resume", str(run_dir)], r"config\.yaml line \d+: the document expands", out=tmp_path / "runs")


# -- plugins --------------------------------------------------------------------------------------------
def test_a_plugin_that_raises_on_import_is_one_sentence(refused, tiny_protocol, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_plugin.py").write_text("import math\nSCALE = 1 / (math.pi - math.pi)\n")
    (tmp_path / "needs_more.py").write_text("import not_installed_anywhere_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = run_args(tiny_protocol, None, tmp_path / "runs")
    refused([*base, "--plugin", "broken_plugin"],
            r"Plugin module 'broken_plugin' raised while being imported: ZeroDivisionError: float division by zero;")
    refused([*base, "--plugin", "needs_more"], r"'needs_more' failed to import: ModuleNotFoundError: No module named "
            r"'not_installed_anywhere_xyz'")
    refused([*base, "--plugin", "no_such_plugin_xyz"], r"'no_such_plugin_xyz' could not be found")
    monkeypatch.setenv("BENCH_DEBUG", "1")  # the switch shows the plugin's own traceback before the sentence
    with pytest.raises(SystemExit):
        from bench.cli import main

        main([*base, "--plugin", "broken_plugin"])
    err = capsys.readouterr().err
    assert "Traceback" in err and "broken_plugin.py" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_tiny_settings_still_run(tiny_protocol, tmp_path):
    """The guards above refuse only what is wrong: a plain run with the same flags goes through."""
    from bench.cli import main

    main(run_args(tiny_protocol, None, tmp_path / "runs") + ["--seeds", "4294967295", "--threads", "1",
                                                              "--run-name", "ok-1", "--limit", "4", *TINY])
    assert (tmp_path / "runs" / "tiny" / "clip_linear" / "ok-1" / "results.json").is_file()
