"""The house's shape: the import-linter contracts in pyproject.toml hold, and they do catch a circle.

The contracts say that bench/'s stages import downwards only, that detectors use only the plugin
contract, that the leaderboard stays torch-free, and that no modules or packages import each other
in a circle at any depth. The second test plants circles in a copy of the tree to show the contracts
are not vacuous.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: import-linter's own command, from the environment running the tests.
LINT = [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml", "--no-cache"]


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT, cwd=root, capture_output=True, text=True, timeout=300, check=False,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _copy_tree(tmp_path: Path) -> Path:
    for name in ("bench", "detectors"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_a_planted_circle_breaks_the_contracts(tmp_path):
    root = _copy_tree(tmp_path)
    # Inside one package: steps would import the detector module that imports steps.
    _plant(root, "bench.plugin.steps", "import bench.plugin.detector  # noqa")
    # Across stages: the run record format reaching up into the CLI.
    _plant(root, "bench.run.results", "import bench.cli  # noqa")
    done = _lint(root)
    assert done.returncode != 0
    out = done.stdout
    assert "no import circles" in out and "BROKEN" in out
    assert "allowed in bench.plugin" in out and ".steps -> .detector" in out
    assert "bench.run.results -> bench.cli" in out
