"""The static site in a real headless browser: no console errors, sorting works, every image loads.

Needs Chromium, its driver and selenium (``.ci/run`` installs them); skipped, saying which is
missing, only where they cannot be installed.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from board import TINY, board, commit, make_result, predictions

from bench.leaderboard import build

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    lb = board(root / "lb", {"best": 1.5, "twin": 1.5, "weak": 0.2}, seeds=(0, 1))
    frame = predictions(2.0, 0)
    result = make_result("probe", 0, frame=frame, runner={"eval_only": True, "checkpoint": "w.pth"})
    result["protocol"]["definition"] = TINY.model_dump(mode="json")
    commit(lb, result, frame)
    build(lb, html=root / "html")
    return root / "html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [name for name, found in (("chromium", BROWSER), ("chromedriver", DRIVER)) if not found]
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found; install with `apt-get install chromium chromium-driver`")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_site_is_self_contained(site):
    for page in site.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), page
        assert "<script>" in text and "<style>" in text
    assert {p.name for p in site.glob("*.html")} == {"index.html", "tiny.html"}


def test_pages_load_without_errors_and_every_image_loads(site, browser):
    for name in ("index.html", "tiny.html"):
        browser.get((site / name).as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        assert all(done and width > 0 for _, done, width in images), images
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    assert sorted(src for src, _, _ in images) == ["figures/tiny/v1/heatmap.png", "figures/tiny/v1/roc.png"]


def column(browser, table: int, col: int) -> list[str]:
    return browser.execute_script(
        f"return Array.from(document.querySelectorAll('table.sortable')[{table}].tBodies[0].rows)"
        f".map(r => r.cells[{col}].getAttribute('data-sort') ?? r.cells[{col}].textContent.trim())")


def test_the_html_page_has_every_table_of_the_markdown_page_with_the_same_rows(site, browser):
    """Parity: one HTML table per Markdown table (ranked, not ranked, per test set, ranking and deployment
    metrics per group, cost, provenance), each labelled by its heading, with the same headers and row count."""
    page = (site.parent / "lb" / "tiny.md").read_text()
    markdown = []
    for block in page.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("| ") and len(lines) > 1 and set(lines[1]) <= set("|:- "):
            markdown.append(([c.strip() for c in lines[0].strip("|").split("|")], len(lines) - 2))
    browser.get((site / "tiny.html").as_uri())
    html = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.sortable')).map(t => [t.getAttribute('aria-label'), "
        "Array.from(t.tHead.rows[0].cells).map(c => c.textContent.trim()), t.tBodies[0].rows.length])")
    assert [(headers, rows) for _, headers, rows in html] == markdown
    labels = [label for label, _, _ in html]
    for heading in ("Not ranked", "auc per test set", "Ranking metrics per group", "Deployment metrics per group",
                    "Cost", "Provenance"):
        assert heading in labels, heading
    deployment = next(h for label, h, _ in html if label == "Deployment metrics per group")
    assert {"acc_val_thr", "oracle_acc", "ece", "tpr_at_fpr1", "tpr_at_fpr5"} <= set(deployment)
    ranked = html[0][1]
    assert ranked[:5] == ["rank", "detector", "auc@unseen", "rank interval", "could be 1st"]
    cells = browser.execute_script("return Array.from(document.querySelectorAll('td')).map(c => c.textContent)")
    assert not [c for c in cells if "nan" in c.lower().split()] and "not recorded" in cells
    figures = browser.execute_script(
        "return Array.from(document.querySelectorAll('figcaption')).map(c => c.textContent)")
    assert figures and all("seed" in caption and "runs)" in caption for caption in figures)


def test_clicking_a_header_sorts_the_table(site, browser):
    browser.get((site / "tiny.html").as_uri())
    ranked = json.loads((site.parent / "lb" / "index.json").read_text())["protocols"][0]["entries"]
    assert column(browser, 0, 1) == [e["detector"] for e in ranked]
    header = browser.find_elements("css selector", "table.sortable")[0].find_elements("css selector", "th")[2]
    header.click()
    values = [float(v) for v in column(browser, 0, 2)]
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    values = [float(v) for v in column(browser, 0, 2)]
    assert values == sorted(values, reverse=True) and header.get_attribute("aria-sort") == "descending"
    names = browser.find_elements("css selector", "table.sortable")[0].find_elements("css selector", "th")[1]
    names.click()
    assert column(browser, 0, 1) == sorted(e["detector"] for e in ranked)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
