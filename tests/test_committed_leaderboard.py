"""The committed leaderboard is what `bench leaderboard build` makes from the committed results."""

import json
from pathlib import Path

import pytest

from bench.leaderboard import check_fresh

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "leaderboard"


def test_committed_pages_are_fresh():
    stale = check_fresh(BOARD, ROOT / "README.md")
    assert not stale, f"stale: {stale}; run `bench leaderboard build --readme README.md` and commit the result"


@pytest.mark.parametrize("protocol", ["synthetic_universal", "synthetic_cross_domain"])
def test_embedded_protocols_have_three_complete_seeds_per_baseline(protocol):
    from bench.protocol import load_protocol

    shipped = load_protocol(protocol).version  # older versions' rows stay beside it, on their own tables
    for detector in ("clip_linear", "univfd"):
        files = sorted((BOARD / "results" / protocol / detector).glob("*.json"))
        results = [r for r in (json.loads(f.read_text()) for f in files) if r["protocol"]["version"] == shipped]
        assert sorted(r["seed"] for r in results) == [0, 1, 2], (protocol, detector)
        assert all(r["status"] == "complete" and not r["partial"] for r in results)
    assert (BOARD / f"{protocol}.md").is_file()


def test_committed_results_match_the_shipped_protocol_version():
    """Each protocol's newest committed results are of the shipped version, with its exact definition.

    Older versions may stay (their pages say which version they rank), but a version bump without
    re-run rows would leave the shipped protocol with no published row to compare against.
    """
    from bench.protocol import load_protocol

    newest: dict[str, int] = {}
    for path in sorted((BOARD / "results").glob("*/*/*.json")):
        result = json.loads(path.read_text())
        proto = load_protocol(result["protocol"]["name"])
        newest[proto.name] = max(newest.get(proto.name, 0), result["protocol"]["version"])
        if proto.version == result["protocol"]["version"]:
            assert result["protocol"]["sha256"] == proto.sha256(), f"{path}: protocol changed without a version bump"
    assert newest, "no committed results"
    for name, version in newest.items():
        assert version == load_protocol(name).version, (
            f"{name}: the newest committed results are v{version}, the shipped protocol is "
            f"v{load_protocol(name).version}; re-run its rows")


def test_committed_pages_never_show_nan_and_link_existing_figures():
    import re

    for page in sorted(BOARD.glob("*.md")):
        text = page.read_text()
        assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE), page
        for link in re.findall(r"\]\((figures/[^)]+\.png)\)", text):
            assert (BOARD / link).is_file(), (page, link)
