"""The command line: every command's help shows an example; errors are one line, no traceback."""

import pytest
from conftest import run_cli, write_tiny_protocol


@pytest.mark.parametrize("command", [["run"], ["ls"], ["show"], ["validate"], ["data"], ["leaderboard"], ["grid"]])
def test_every_command_has_help_with_an_example(command, capsys):
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0 and "examples:" in out and "bench " in out.split("examples:")[1]


def test_ls_detectors_and_protocols(capsys):
    _, out, _ = run_cli(["ls", "detectors"], capsys)
    assert "clip_linear" in out and "univfd" in out and "forgery-bench" in out
    _, out, _ = run_cli(["ls", "protocols"], capsys)
    assert "synthetic_universal" in out and "synthetic_cross_domain" in out
    _, out, _ = run_cli(["ls", "sources"], capsys)
    assert {"folder", "manifest", "hf", "synthetic"} <= set(out.split())


def test_show_detector_resolves_preset_protocol_and_overrides(capsys):
    code, out, _ = run_cli(["show", "detector", "univfd", "--protocol", "synthetic_universal", "-o", "lr=0.01"], capsys)
    assert code == 0
    assert "probe: sgd" in out and "lr: 0.01" in out and "tf_efficientnet_lite0" in out


def test_show_protocol_counts_classes(capsys):
    code, out, _ = run_cli(["show", "protocol", "synthetic_cross_domain"], capsys)
    assert code == 0 and "primary: auc@unseen" in out and "sha256" in out
    assert "test/blend_ellipse" in out and "100" in out


def test_validate_all_and_bad_file(tmp_path, capsys):
    code, out, _ = run_cli(["validate"], capsys)
    assert code == 0 and "ok  synthetic_universal.yaml" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nversion: 1\nverison: 2\n")
    code, _, err = run_cli(["validate", str(bad)], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_detector_is_one_line_with_suggestion(tmp_path, capsys):
    write_tiny_protocol(tmp_path)
    code, _, err = run_cli(["run", "--protocol", str(tmp_path / "tiny.yaml"), "--detector", "univdf"], capsys)
    assert code == 2 and "Did you mean 'univfd'" in err


def test_unknown_override_key_fails_before_any_work(tmp_path, capsys):
    write_tiny_protocol(tmp_path)
    code, _, err = run_cli(["run", "--protocol", str(tmp_path / "tiny.yaml"), "--detector", "clip_linear",
                            "-o", "c_value=1", "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and "Did you mean 'c_values'" in err
    assert not (tmp_path / "runs").exists()


def test_run_prints_a_table_and_marks_limit_partial(tmp_path, capsys):
    write_tiny_protocol(tmp_path)
    code, out, _ = run_cli(["run", "--protocol", str(tmp_path / "tiny.yaml"), "--detector", "clip_linear",
                            "--limit", "4", "--seeds", "0,1", "--out", str(tmp_path / "runs")], capsys)
    assert code == 0 and out.count("PARTIAL") == 2 and "[unseen]" in out


def test_data_synth_writes_folders_the_folder_source_reads(tmp_path, capsys):
    write_tiny_protocol(tmp_path)
    code, _, _ = run_cli(["data", "synth", "--protocol", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "d")], capsys)
    assert code == 0
    from bench.data.sources.folder import FolderSource

    source = FolderSource("d", {"root": "d"}, tmp_path)
    table = source.select("test", ["peaks_p4"])
    assert len(table) == 16 and set(table["label"]) == {0, 1}
    code, _, err = run_cli(["data", "synth", "--protocol", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("args,message", [
    (["-o", "select=best:foo"], "select must be 'last' or 'best:<metric>'"),
    (["--limit", "-1"], "--limit must be a positive integer"),
])
def test_bad_run_options_are_one_line(tmp_path, capsys, args, message):
    write_tiny_protocol(tmp_path)
    code, _, err = run_cli(["run", "--protocol", str(tmp_path / "tiny.yaml"), "--detector", "clip_linear",
                            "--out", str(tmp_path / "runs"), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err
