"""Every code block of the README and docs/leaderboard.md that can run offline still runs.

Install, test and data commands (``bash`` blocks) and diagrams are exempt; Python, TOML and YAML
blocks are executed, parsed or validated here.
"""

from __future__ import annotations

import re
import runpy
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "leaderboard.md"]


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_only_known_block_languages():
    for path in DOCS:
        languages = set(re.findall(r"^```(\w*)\n", path.read_text(), flags=re.MULTILINE))
        assert languages <= {"", "bash", "python", "toml", "yaml"}, (path, languages)


def test_adapter_and_its_contract_test_run(tmp_path, monkeypatch):
    python = blocks(ROOT / "README.md", "python")
    adapter = next(b for b in python if "class TinyCNN(Detector)" in b)
    contract = next(b for b in python if "check_detector(lambda" in b)
    (tmp_path / "my_detectors.py").write_text(adapter)
    (tmp_path / "test_contract.py").write_text(contract)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_detectors", raising=False)
    runpy.run_path(str(tmp_path / "test_contract.py"))["test_tiny_cnn_honours_the_adapter_contract"]()
    monkeypatch.delitem(sys.modules, "my_detectors")


def test_toml_blocks_parse_and_declare_entry_points():
    for block in blocks(ROOT / "README.md", "toml"):
        points = tomllib.loads(block)["project"]["entry-points"]
        assert set(points) <= {"bench.detectors", "bench.protocols", "bench.sources"}


def test_protocol_example_validates(tmp_path, capsys):
    from bench.cli import main

    (example,) = [b for b in blocks(ROOT / "README.md", "yaml") if b.startswith("name: my_protocol")]
    path = tmp_path / "my_protocol.yaml"
    path.write_text(example)
    main(["validate", str(path)])
    assert "ok  my_protocol.yaml: my_protocol v1, 3 test sets, primary auc@unseen" in capsys.readouterr().out


def test_protocol_keys_table_matches_the_schema_help():
    from bench.protocol.keys import KEYS

    text = (ROOT / "README.md").read_text()
    table = text[text.index("<!-- protocol-keys:start -->"):text.index("<!-- protocol-keys:end -->")]
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", table, flags=re.MULTILINE)
    assert rows == [(k, m.replace("|", "\\|")) for k, m in KEYS]


def test_schema_help_describes_every_field():
    from bench.protocol import Budget, PairedTest, Perturb, Protocol, Split, ValSplit
    from bench.protocol.keys import KEYS

    keys = {k for k, _ in KEYS}
    fields = set(Protocol.model_fields) | {f"<split>.{f}" for f in Split.model_fields}
    fields |= {f"val.{f}" for f in set(ValSplit.model_fields) - set(Split.model_fields)}
    fields |= {f"budget.{f}" for f in Budget.model_fields} - {"budget"}
    fields.discard("budget")
    assert set(PairedTest.model_fields) == {"real", "fake", "perturb", "sanity"} and set(Perturb.model_fields) == {
        "jpeg", "blur", "downscale", "shorter_side", "chain", "seed"}  # both described inside the `test` and `<split>.perturb` lines
    assert keys == fields


@pytest.mark.parametrize("block", blocks(ROOT / "docs" / "leaderboard.md", "python"))
def test_docs_python_blocks_run_on_the_committed_leaderboard(block, tmp_path, monkeypatch, capsys):
    (tmp_path / "example.py").write_text(block)
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(tmp_path / "example.py"))
    assert "clip_linear" in capsys.readouterr().out
