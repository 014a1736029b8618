"""GenImage's 8 x 8 matrix: the genimage_matrix_<generator> protocols laid out on one family page."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from board import commit, predictions

from bench.leaderboard import build
from bench.leaderboard.matrix import FAMILIES
from bench.metrics import compute_metrics
from bench.plugin.factory import resolve_detector
from bench.protocol import load_protocol
from bench.run import record
from bench.run.runner import RunnerOptions

GENS = FAMILIES["genimage_matrix"]


@pytest.fixture(scope="module")
def built_detector():
    spec = resolve_detector("clip_linear", {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline",
                                            "image_size": 32})
    return spec, spec.build()


def stored(spec, det, trained_on: str, seed: int, separation: float) -> tuple[dict, object]:
    """A result of protocol genimage_matrix_<trained_on> written by the run's own writer (record.assemble)."""
    proto = load_protocol(f"genimage_matrix_{trained_on}")
    frame = predictions(separation, seed, tests=list(proto.test), noise_seed=seed)
    frame.loc[(frame["test_set"] == trained_on) & (frame["label"] == 1), "score"] += 3.0  # in-domain is easier
    metrics = {t: compute_metrics(p["label"], p["score"], proto.metrics, where=t)
               for t, p in frame.groupby("test_set", sort=False)}
    runner = SimpleNamespace(opts=RunnerOptions(), workers_used={}, precision="no", cache=None,
                             accelerator=SimpleNamespace(device="cpu", num_processes=1))
    arguments = {"limit": None, "perturb": None, "eval_only": False, "checkpoint": None, "overrides": {},
                 "check_images": False, "command": "bench run"}
    result = record.assemble(run_dir=Path(f"20261207-21000{seed}-s{seed}"), proto=proto, spec=spec, det=det,
                             seed=seed, selection={"rule": "best:acc", "epoch": 1}, metrics=metrics, splits={},
                             runner=runner, arguments=arguments, timing={"started_at": "2026-12-07T21:00:00+00:00"},
                             absent={}, conversions={}, threshold={"value": 0.0}, predictions=None)
    return json.loads(json.dumps(result)), frame


TRAINED = {"clip_linear": ["sd_v1_4", "adm", "biggan"], "second": ["sd_v1_4", "adm"]}  # rows run per detector


@pytest.fixture(scope="module")
def family_board(tmp_path_factory, built_detector):
    """Two detectors' genimage_matrix_<g> results (two seeds each), built with the static site."""
    spec, det = built_detector
    root = tmp_path_factory.mktemp("family")
    for d, (detector, generators) in enumerate(TRAINED.items()):
        for g in generators:
            for seed in (0, 1):
                result, frame = stored(spec, det, g, seed, 0.5 + d)
                result["detector"]["name"] = detector
                commit(root / "lb", result, frame)
    build(root / "lb", html=root / "html")
    return root / "lb", root / "html"


def test_the_family_page_shows_one_matrix_per_detector_with_the_per_test_mean(family_board):
    lb, _ = family_board
    trained = TRAINED["clip_linear"]  # three rows run; the page lists the other five as not run
    page = (lb / "genimage_matrix.md").read_text()
    assert "Not run yet: midjourney, sd_v1_5, glide, wukong, vqdm." in page
    lines = page[page.index("### clip_linear (acc)"):].split("\n### ")[0].splitlines()  # up to the next heading
    header = next(line for line in lines if line.startswith("| trained on"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["trained on \\ tested on", *GENS, "mean"]
    rows = {r.split("|")[1].strip(): [float(c) for c in r.strip("|").split("|")[1:]]
            for r in lines if r.startswith("| ") and not r.startswith("| trained")}
    assert list(rows) == [*trained, "mean over 3 training generator(s)"]
    for g in trained:  # each cell is its protocol's own per-test value (mean over seeds), as on its page
        table = json.loads((lb / "index.json").read_text())
        (t,) = [p for p in table["protocols"] if p["name"] == f"genimage_matrix_{g}"]
        (entry,) = [e for e in t["entries"] if e["detector"] == "clip_linear"]
        assert rows[g][:8] == pytest.approx([entry["metrics"][s]["acc"]["mean"] for s in GENS], abs=5e-4)
        assert rows[g][GENS.index(g)] == max(rows[g][:8])  # the diagonal: trained on it
    means = rows["mean over 3 training generator(s)"]
    for i in range(8):
        assert means[i] == pytest.approx(sum(rows[g][i] for g in trained) / 3, abs=1e-3)
    assert (lb / "genimage_matrix_adm.md").is_file()  # each row keeps its own page


class Html(HTMLParser):
    """An HTML page's tables (``{aria-label: rows of cell texts}``, header row first) and link targets."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(attrs["aria-label"], [])
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def markdown_tables(page: str) -> dict[str, list[list[str]]]:
    """A Markdown page's pipe tables by the heading above them, header row first, separator left out."""
    out, heading = {}, ""
    for block in page.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("#"):
            heading = lines[0].lstrip("# ")
        elif lines and lines[0].startswith("| "):
            out[heading] = [[c.strip() for c in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]
    return out


def test_the_site_has_the_family_page_with_every_matrix_of_the_markdown_page(family_board):
    lb, site = family_board
    expected = markdown_tables((lb / "genimage_matrix.md").read_text())
    assert sorted(expected) == ["clip_linear (acc)", "second (acc)"]
    assert len(expected["second (acc)"]) == 1 + 2 + 1  # header, two training generators, the mean
    family = Html((site / "genimage_matrix.html").read_text())
    assert family.tables == expected  # the same cells, header and row labels as the Markdown matrices
    # The mean row sits in the table's footer, so sorting a column never moves it in among the generators.
    page = (site / "genimage_matrix.html").read_text()
    assert page.count("<tfoot>") == 2 and all(
        "<tfoot>\n<tr><td>mean over" in table for table in page.split("<table")[1:])
    assert family.links == ["index.html", *(f"genimage_matrix_{g}.html" for g in ["sd_v1_4", "adm", "biggan"])]
    index = (site / "index.html").read_text()
    assert "<h2>Protocol families</h2>" in index
    assert "genimage_matrix.html" in Html(index).links
    for g in TRAINED["clip_linear"]:  # every member page links to its family, and exists
        assert "genimage_matrix.html" in Html((site / f"genimage_matrix_{g}.html").read_text()).links


def test_no_family_page_without_its_protocols(tmp_path):
    from board import board

    build(board(tmp_path / "lb", {"a": 1.0}, seeds=(0,)), html=tmp_path / "html")
    assert not (tmp_path / "lb" / "genimage_matrix.md").exists()
    assert sorted(p.name for p in (tmp_path / "html").glob("*.html")) == ["index.html", "tiny.html"]
    index = (tmp_path / "html" / "index.html").read_text()
    assert "Protocol families" not in index and Html(index).links == ["tiny.html"]
    assert Html((tmp_path / "html" / "tiny.html").read_text()).links == ["index.html"]
