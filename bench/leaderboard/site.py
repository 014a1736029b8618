"""``bench leaderboard build --html DIR``: a self-contained static site (no network, no CDN).

``DIR/index.html`` lists the protocols; ``DIR/<protocol>.html`` has, per version, the ranked table
(sortable by clicking a header), intervals and tie marks, the unranked runs, the pictures
(``DIR/figures/...``, copied from the build), the per-test and per-group tables and the provenance.
CSS and JavaScript are inline; every link is relative.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path
from typing import Any

from bench.leaderboard.tables import cell, label, legend, rank_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:80rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .5rem}
th{background:#f3f3f3;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#666;font-size:.8em}.tie{font-weight:bold;color:#1a6}figure{margin:1rem 0}img{max-width:100%}
code{font-size:.85em;word-break:break-all}.legend{color:#444;font-size:.9rem}
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


def _cell(stat: dict[str, Any] | None) -> str:
    if stat is None:
        return '<td class="num" data-sort="">–</td>'
    text = cell(stat)
    main, _, rest = text.partition(" ")
    extra = f' <span class="ci">{escape(rest)}</span>' if rest else ""
    return f'<td class="num" data-sort="{stat["mean"]:.6f}">{escape(main)}{extra}</td>'


def _table(headers: list[str], rows: list[list[str]], caption: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return (f'<table class="sortable" aria-label="{escape(caption)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>")


def _td(text: str, sort: str | None = None, cls: str = "") -> str:
    attrs = (f' data-sort="{escape(sort)}"' if sort is not None else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{escape(text)}</td>"


def _version(name: str, t: dict[str, Any]) -> str:
    better = "higher" if t["higher_is_better"] else "lower"
    parts = [(f"<h2 id=\"v{t['version']}\">{escape(name)} v{t['version']} · primary: {escape(t['primary'])} "
              f"({better} is better)</h2>")]
    others = [g for g in t["groups"] if g != t["target"]]
    rows = [[_td(rank_text(e), str(e["rank"]), "tie" if e.get("tied_for_first") else ""), _td(label(e)),
             _cell(e["primary"]), *(_cell(e["groups"][g].get(t["metric"])) for g in others),
             _td(f"{e['params_trainable']:,}", str(e["params_trainable"]), "num"), _td(str(len(e["seeds"])), cls="num")]
            for e in t["entries"]]
    parts.append(_table(["rank", "detector", t["primary"], *others, "trainable params", "seeds"], rows, "ranked"))
    parts += [f'<p class="legend">{escape(line.replace("`", ""))}</p>' for line in legend(t)]
    if t["unranked"]:
        parts.append("<h3>Not ranked</h3><p>Runs not trained under the protocol, or with skipped images.</p>")
        rows = [[_td(label(e)), _cell(e["primary"]), _td("; ".join(e["origin"]["reasons"]) or e["origin"]["kind"]),
                 _td(str(len(e["seeds"])), cls="num")] for e in t["unranked"]]
        parts.append(_table(["detector", t["primary"], "why it is not ranked", "seeds"], rows, "not ranked"))
    for path, caption in t.get("figure_captions", []):
        parts.append(f'<figure><img src="{escape(path)}" alt="{escape(Path(path).stem)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    everyone = t["entries"] + t["unranked"]
    parts.append(f"<h3>{escape(t['metric'])} per test set</h3>")
    rows = [[_td(s), *(_cell(e["metrics"][s].get(t["metric"])) for e in everyone)] for s in t["tests"]]
    parts.append(_table(["test set", *(label(e, True) for e in everyone)], rows, "per test set"))
    parts.append("<h3>Provenance</h3>")
    rows = [[_td(label(e, True)), _td(e["config_sha256"][:8]), _td(e["distribution"] or "unknown"),
             _td(e["overrides_text"]), _td("; ".join(e["code"])), f"<td><code>{escape(e['command'])}</code></td>"]
            for e in everyone]
    parts.append(_table(["detector", "config", "provided by", "overrides (-o)", "code", "reproduce"], rows,
                        "provenance"))
    p = t["provenance"]
    parts.append(f"<p>protocol sha256 <code>{t['sha256'][:12]}</code>; {p['files']} result files, "
                 f"{p['with_predictions']} with stored predictions; devices {escape(', '.join(p['devices']))}; "
                 f"runs started {escape(' to '.join(p['dates']) or 'unknown')}.</p>")
    return "\n".join(parts)


def _html(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n<script>{_JS}</script></body></html>\n")


def write_site(board, lb: Path, out: Path) -> list[Path]:
    """Write the site for a computed board (figures already built under ``lb``); return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = copy_figures(board, lb, out)
    links = []
    for name, versions in board.tables.items():
        sections = []
        for table in versions:
            t = dict(table.data)
            t["figure_captions"] = [(f, board.figures[lb / f].caption) for f in t.get("figures", [])]
            sections.append(_version(name, t))
        page = out / f"{name}.html"
        page.write_text(_html(f"Leaderboard: {name}", f'<p><a href="index.html">All protocols</a></p>'
                              f"<h1>Leaderboard: {escape(name)}</h1>\n" + "\n".join(sections)), encoding="utf-8")
        written.append(page)
        top = versions[0].data
        best = top["entries"][0]["detector"] if top["entries"] else "no ranked runs"
        links.append(f'<li><a href="{escape(name)}.html">{escape(name)}</a> v{top["version"]}: '
                     f"{escape(top['primary'])}, first: {escape(best)}</li>")
    index = out / "index.html"
    index.write_text(_html("forgery-bench leaderboards", "<h1>forgery-bench leaderboards</h1>\n<ul>"
                           + "\n".join(links) + "</ul>"), encoding="utf-8")
    return [*written, index]


def copy_figures(board, lb: Path, out: Path) -> list[Path]:
    """Copy the built figures under ``out`` at the same relative paths; return the copies."""
    copies = []
    for path in board.figures:
        target = out / path.relative_to(lb)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copies.append(target)
    return copies
