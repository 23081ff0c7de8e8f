"""Rendering a report: one self-contained HTML document, or Markdown beside its figures."""

from __future__ import annotations

import base64
import html

from bayes_scaling import __version__
from bayes_scaling.report.blocks import FigureBlock, Report, Table

__all__ = ["CSS", "html_table", "inline", "md_cell", "render_html", "render_markdown"]

#: The report's style sheet (inline: the file needs nothing else).
CSS = (
    """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#222;background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5em 2em 4em;background:#fff}
"""
    "h1{font-size:1.7em;margin-bottom:.2em}"
    "h2{border-bottom:2px solid #e5e5e5;padding-bottom:.2em;margin-top:1.8em}\n"
    """.meta{color:#666;font-size:.9em}
nav ol{columns:2;font-size:.95em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
tr.ok td:last-child{background:#e8f5e9}tr.warn td:last-child{background:#fff8e1}
tr.bad td:last-child{background:#ffebee}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
"""
)


def inline(text: str) -> str:
    """Escape text for HTML and turn **bold** into <strong> and `code` into <code>."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return text
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(report: Report) -> str:
    """One self-contained HTML document: figures as base64 ``data:`` URIs, no scripts."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>{html.escape(report.title)}</h1>",
        (
            f'<p class="meta">bayes-scaling {html.escape(__version__)}, '
            f"generated {html.escape(report.generated)}, {len(report.figures)} figures</p>"
        ),
        "<nav><ol>",
    ]
    out += [f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in report.sections]
    out.append("</ol></nav>")
    for section in report.sections:
        out.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{inline(block)}</p>")
            elif isinstance(block, Table):
                out.append(html_table(block))
            elif isinstance(block, FigureBlock):
                data = base64.b64encode(block.png).decode("ascii")
                out.append(
                    f'<figure id="{block.name}"><img src="data:image/png;base64,{data}" '
                    f'alt="{html.escape(block.caption, quote=True)}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
        out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def html_table(table: Table) -> str:
    """A table as HTML, rows coloured by their status."""
    rows = ["<table>"]
    if any(table.header):
        rows.append(
            "<thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
            + "</tr></thead>"
        )
    rows.append("<tbody>")
    for i, row in enumerate(table.rows):
        cls = table.status[i] if i < len(table.status) and table.status[i] else ""
        attr = f' class="{cls}"' if cls else ""
        rows.append(f"<tr{attr}>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


#: Status marks of the Markdown tables.
MARK = {"ok": "✅ ", "warn": "⚠️ ", "bad": "❌ "}


def md_cell(text: str) -> str:
    """Text made safe for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, folder: str) -> str:
    """The report as Markdown, linking the figures in ``folder`` (written beside it)."""
    out = [
        f"# {report.title}",
        "",
        f"_bayes-scaling {__version__}, generated {report.generated}, "
        f"{len(report.figures)} figures_",
        "",
    ]
    out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(report.sections, 1)]
    out.append("")
    for section in report.sections:
        out += [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, Table):
                header = [h or " " for h in block.header]
                out.append("| " + " | ".join(map(md_cell, header)) + " |")
                out.append("|" + "---|" * len(header))
                for i, row in enumerate(block.rows):
                    mark = MARK.get(block.status[i], "") if i < len(block.status) else ""
                    cells = list(map(md_cell, row))
                    if mark:
                        cells[-1] = mark + cells[-1]
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
            elif isinstance(block, FigureBlock):
                out += [
                    f"![{md_cell(block.caption)}]({folder}/{block.name}.png)",
                    "",
                    f"*{block.caption}*",
                    "",
                ]
    return "\n".join(out)
