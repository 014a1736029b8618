"""The README's third-party adapter (examples/plugin) is discovered through its entry point and runs."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import write_tiny_protocol

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"
README = Path(__file__).resolve().parents[1] / "README.md"


def _simulate_install(site: Path) -> None:
    """What `pip install examples/plugin` leaves behind: the module plus dist-info with its entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    (site / "my_detectors.py").write_text((EXAMPLE / "my_detectors.py").read_text())
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
             for group, points in project["entry-points"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines))


def test_readme_shows_the_example_verbatim():
    readme = README.read_text()
    assert (EXAMPLE / "my_detectors.py").read_text().strip() in readme
    assert (EXAMPLE / "pyproject.toml").read_text().strip() in readme


def test_installed_plugin_is_listed_checked_and_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _simulate_install(site)
    write_tiny_protocol(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run([sys.executable, "-m", "bench", "ls", "detectors"], env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert listing.returncode == 0, listing.stderr
    assert "tiny_cnn" in listing.stdout and "my-detectors 0.1.0" in listing.stdout
    check = subprocess.run([sys.executable, "-c", ("from bench.testing import check_detector; "
                            "from my_detectors import TinyCNN; print(check_detector(lambda: TinyCNN()))")],
                           env=env, capture_output=True, text=True, check=False, timeout=120)
    assert check.returncode == 0 and "train_step" in check.stdout, check.stderr
    ran = subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", str(tmp_path / "tiny.yaml"),
                          "--detector", "tiny_cnn", "-o", "image_size=32", "--batch-size", "8", "--out", str(tmp_path / "runs"),
                          "--run-name", "r"], env=env, capture_output=True, text=True, check=False, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = (tmp_path / "runs" / "tiny" / "tiny_cnn" / "r" / "results.json").read_text()
    assert '"distribution": "my-detectors 0.1.0"' in result
