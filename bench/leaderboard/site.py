"""``bench leaderboard build --html DIR``: a self-contained static site (no network, no CDN).

``DIR/index.html`` lists the protocols and the protocol families; ``DIR/<protocol>.html`` renders the
very blocks of the Markdown page (:func:`bench.leaderboard.tables.page_blocks`): every table, legend
and picture, with sortable tables (click a header). ``DIR/<family>.html`` renders a family's blocks
(:func:`bench.leaderboard.matrix.family_blocks`, e.g. GenImage's 8 x 8 matrix) and links to its member
protocols, whose pages link back. CSS and JavaScript are inline; every link is relative.
"""

from __future__ import annotations

import re
import shutil
from html import escape
from pathlib import Path

from bench.leaderboard.layout import Block
from bench.leaderboard.matrix import FAMILIES, family_of, members
from bench.leaderboard.tables import page_blocks

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:90rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.3rem .5rem}
th{background:#f3f3f3;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#666;font-size:.85em}figure{margin:1rem 0}img{max-width:100%}
code{font-size:.85em;word-break:break-all}p{max-width:70rem}.wide{overflow-x:auto}
"""
_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var c = row.cells[col];
        var v = c.hasAttribute('data-sort') ? c.getAttribute('data-sort') : c.textContent.trim();
        var n = parseFloat(v);
        return isNaN(n) ? v : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
_HOME = '<a href="index.html">All protocols</a>'
_CODE = re.compile(r"`([^`]+)`")
_EMPHASIS = re.compile(r"\*([^*\s][^*]*)\*")


def inline(text: str) -> str:
    """Markdown's inline marks of the page text (`code`, *emphasis*) as HTML, the rest escaped."""
    html = escape(text)
    html = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html)
    return _EMPHASIS.sub(lambda m: f"<em>{m.group(1)}</em>", html)


def _cell(cell) -> str:
    sort = f' data-sort="{escape(cell.sort)}"' if cell.sort is not None else ""
    text = cell.text
    if cell.number and " [" in text:  # the interval in a quieter colour
        main, _, rest = text.partition(" ")
        return f'<td class="num"{sort}>{escape(main)} <span class="ci">{escape(rest)}</span></td>'
    css = ' class="num"' if cell.number else ""
    return f"<td{css}{sort}>{inline(text)}</td>"


def to_html(blocks: list[Block]) -> str:
    """The blocks as HTML: headings, paragraphs, sortable tables (labelled by their heading) and figures."""
    parts, heading = [], ""
    for block in blocks:
        if block.kind == "heading":
            heading = block.text
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif block.kind == "text":
            parts.append(f"<p>{inline(block.text)}</p>")
        elif block.kind == "table":
            head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
            split = len(block.rows) - block.summary_rows
            body, foot = ("\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
                          for rows in (block.rows[:split], block.rows[split:]))
            foot = f"<tfoot>\n{foot}\n</tfoot>" if foot else ""  # summary rows stay below the sorted body
            parts.append(f'<div class="wide"><table class="sortable" aria-label="{escape(heading)}"><thead><tr>{head}'
                         f"</tr></thead><tbody>\n{body}\n</tbody>{foot}</table></div>")
        elif block.kind == "figure":
            parts.append(f'<figure><img src="{escape(block.path)}" alt="{escape(Path(block.path).stem)}">'
                         f"<figcaption>{inline(block.text)}</figcaption></figure>")
    return "\n".join(parts)


def _html(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n<script>{_JS}</script></body></html>\n")


def _link(name: str) -> str:
    return f'<a href="{escape(name)}.html">{escape(name)}</a>'


def write_site(board, lb: Path, out: Path) -> list[Path]:
    """Write the site for a computed board (figures already built under ``lb``); return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = copy_figures(board, lb, out)
    links, family_links = [], []
    for name, versions in board.tables.items():
        figures = {t.data["version"]: [(f, board.figures[lb / f].caption) for f in t.data.get("figures", [])]
                   for t in versions}
        blocks = page_blocks(name, [t.data for t in versions], figures)
        family = family_of(name)
        nav = _HOME + (f" · part of the family {_link(family)}" if family in board.families else "")
        written.append(_page(out, name, f"<p>{nav}</p>\n" + to_html(blocks)))
        top = versions[0].data
        best = top["entries"][0]["detector"] if top["entries"] else "no ranked runs"
        links.append(f"<li>{_link(name)} v{top['version']}: {escape(top['primary'])}, first: {escape(best)}</li>")
    for family, blocks in board.families.items():
        shown = members(family, list(board.tables))
        nav = _HOME + " · members: " + ", ".join(_link(m) for m in shown)
        written.append(_page(out, family, f"<p>{nav}</p>\n" + to_html(blocks)))
        family_links.append(f"<li>{_link(family)}: {len(shown)} of {len(FAMILIES[family])} member protocols "
                            f"({escape(family)}_&lt;training generator&gt;) side by side, one matrix per detector</li>")
    body = "<h1>forgery-bench leaderboards</h1>\n<ul>" + "\n".join(links) + "</ul>"
    if family_links:
        body += "\n<h2>Protocol families</h2>\n<ul>" + "\n".join(family_links) + "</ul>"
    index = out / "index.html"
    index.write_text(_html("forgery-bench leaderboards", body), encoding="utf-8")
    return [*written, index]


def _page(out: Path, name: str, body: str) -> Path:
    page = out / f"{name}.html"
    page.write_text(_html(f"Leaderboard: {name}", body), encoding="utf-8")
    return page


def copy_figures(board, lb: Path, out: Path) -> list[Path]:
    """Copy the built figures under ``out`` at the same relative paths; return the copies."""
    copies = []
    for path in board.figures:
        target = out / path.relative_to(lb)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copies.append(target)
    return copies
