"""The run report's HTML: one self-contained page (inline CSS, images as data: URIs, no script, no URL).

The page is a title, a table of contents and one ``<section>`` per part of the run; a part
the run does not have reads "not in this run" and says why (`not_in_run`). Everything
shown is escaped here (`escape`), so file names and class names cannot break the markup.

Example:
    >>> page = render_page("demo", [Section("overview", "Overview", table(["a"], [["1 < 2"]]))])
    >>> page.startswith("<!DOCTYPE html>") and 'id="overview"' in page and "1 &lt; 2" in page
    True
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from html import escape

CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; color: #222; }
h1 { margin: 24px 0 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 36px; }
nav a { margin-right: 14px; } .sub { color: #666; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { background: #fff4d6; font-weight: 600; }
.missing { color: #8a6d00; background: #fff8e1; border-left: 4px solid #e0b000; padding: 8px 12px; }
.bad { color: #a00; font-weight: 600; } .good { color: #080; font-weight: 600; }
.bar { background: #4a86c5; height: 12px; display: inline-block; vertical-align: middle; }
img.figure, img.half { max-width: 100%; height: auto; border: 1px solid #eee; margin: 6px 12px 6px 0; }
img.half { max-width: calc(50% - 14px); }
svg.genotype { max-width: none; } svg.genotype.fit { max-width: 100%; height: auto; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; }
.scroll { overflow-x: auto; } .legend .key { margin-right: 16px; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #555; margin-right: 4px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
"""


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the report: its anchor, its heading and its (already escaped) HTML body."""

    anchor: str
    title: str
    body: str


def not_in_run(reason: str) -> str:
    """The body of a section the run does not have: "not in this run" and why.

    Example:
        >>> not_in_run("no pareto.json: the search has not run")
        '<p class="missing">Not in this run: no pareto.json: the search has not run</p>'
    """
    return f'<p class="missing">Not in this run: {escape(reason)}</p>'


def png_image(data: bytes, alt: str, css: str = "figure") -> str:
    """An ``<img>`` holding PNG bytes inline (a data: URI), described by ``alt``, of CSS class ``css``.

    Example:
        >>> png_image(b"abc", "x")
        '<img class="figure" alt="x" src="data:image/png;base64,YWJj">'
    """
    return f'<img class="{css}" alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def cell(value) -> str:
    """A table cell: numbers right-aligned (floats with two decimals, or three significant digits
    below 1, so 0.0926 ms stays readable), None as ``-``, the rest escaped.

    Example:
        >>> cell(12.345), cell(0.09263), cell(0.0), cell(None), cell(7), cell("<b>")
        ('<td class="num">12.35</td>', '<td class="num">0.0926</td>', '<td class="num">0.00</td>', \
'<td class="num">-</td>', '<td class="num">7</td>', '<td>&lt;b&gt;</td>')
    """
    if value is None:
        return '<td class="num">-</td>'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{escape(str(value))}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f'<td class="num">{value:.2f}</td>' if abs(value) >= 1 or value == 0 else f'<td class="num">{value:.3g}</td>'


def table(headers: Sequence[str] | None, rows: Sequence[Sequence], row_classes: Sequence[str] | None = None,
          raw_columns: Sequence[int] = ()) -> str:
    """An HTML table (no heading row when ``headers`` is None); cells go through `cell`, except those
    of ``raw_columns`` (HTML made here).

    Example:
        >>> table(["k", "v"], [["a", 1.5]], ["chosen"])
        '<table><tr><th>k</th><th>v</th></tr><tr class="chosen"><td>a</td><td class="num">1.50</td></tr></table>'
    """
    head = "" if headers is None else "<tr>" + "".join(f"<th>{escape(header)}</th>" for header in headers) + "</tr>"
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(f"<td>{value}</td>" if column in raw_columns else cell(value)
                        for column, value in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole page: title, table of contents, sections."""
    nav = " ".join(f'<a href="#{section.anchor}">{escape(section.title)}</a>' for section in sections)
    body = "\n".join(f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>\n{section.body}\n</section>'
                     for section in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p><nav>{nav}</nav>\n{body}\n"
            "</body></html>\n")
