"""Write a page's blocks (``manpage.Block``) as HTML, Markdown, DOCX or PDF: tables as the format's tables,
preformatted text as the format's preformatted text (HTML ``<pre>``, a Markdown code block, lines broken in DOCX,
a fixed-width font in PDF)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from manpage import Block

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")
# PDF core fonts hold Latin-1 only
_LATIN1 = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2022": "*", "\u00b7": "*", "\u2026": "...", "\u2192": "->"})


def write(blocks: Sequence[Block], title: str, path: Path) -> None:
    """Write ``blocks`` to ``path`` in the format its suffix names (.html, .md, .docx, .pdf)."""
    writers = {".html": _html, ".md": _markdown, ".docx": _docx, ".pdf": _pdf}
    writers[path.suffix](blocks, title, path)


def _html(blocks: Sequence[Block], title: str, path: Path) -> None:
    out = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"]
    out.append(f"<h1>{html.escape(title)}</h1>")
    for block in blocks:
        if block.kind == "heading":
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif block.kind == "para":
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif block.kind == "pre":
            out.append(f"<pre>{html.escape(block.text)}</pre>")
        else:
            head, *body = block.rows
            out.append("<table>\n<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead>")
            out.append("<tbody>")
            out.extend("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
            out.append("</tbody>\n</table>")
    out.append("</body></html>\n")
    path.write_text("\n".join(out), encoding="utf-8")


def _markdown(blocks: Sequence[Block], title: str, path: Path) -> None:
    out = [f"# {title}"]
    for block in blocks:
        if block.kind == "heading":
            out.append("#" * block.level + " " + block.text)
        elif block.kind == "para":
            out.append(_MARKDOWN_SPECIAL.sub(r"\\\1", block.text))
        elif block.kind == "pre":
            fence = "~~~~" if "```" in block.text else "```"
            out.append(f"{fence}\n{block.text}\n{fence}")
        else:
            head, *body = block.rows
            out.append(
                "\n".join(
                    [_md_row(head), "|" + "---|" * len(head)] + [_md_row(row) for row in body]
                )
            )
    path.write_text("\n\n".join(out) + "\n", encoding="utf-8")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _docx(blocks: Sequence[Block], title: str, path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=1)
    for block in blocks:
        if block.kind == "heading":
            document.add_heading(block.text, level=block.level)
        elif block.kind in ("para", "pre"):
            document.add_paragraph(block.text)  # python-docx makes each "\n" a line break
        else:
            table = document.add_table(rows=len(block.rows), cols=len(block.rows[0]))
            table.style = "Table Grid"
            for row, cells in zip(table.rows, block.rows):
                for cell, text in zip(row.cells, cells):
                    cell.text = text
    document.save(str(path))


def _pdf(blocks: Sequence[Block], title: str, path: Path) -> None:
    from fpdf import FPDF

    def latin1(text: str) -> str:
        return text.translate(_LATIN1).encode("latin-1", errors="replace").decode("latin-1")

    pdf = FPDF(format="A4")
    pdf.set_title(latin1(title))
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=timezone.utc))  # the same bytes on every build
    pdf.set_margins(20, 20)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, latin1(title), new_x="LMARGIN", new_y="NEXT")
    for block in blocks:
        if block.kind == "heading":
            pdf.set_font("Helvetica", "B", 13 if block.level == 2 else 11)
            pdf.ln(2)
            pdf.multi_cell(0, 6, latin1(block.text), new_x="LMARGIN", new_y="NEXT")
        else:
            text = block.text if block.kind in ("para", "pre") else "\n".join("    ".join(row) for row in block.rows)
            pdf.set_font(*(("Courier", "", 9) if block.kind == "pre" else ("Helvetica", "", 10)))
            pdf.multi_cell(0, 5, latin1(text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    pdf.output(str(path))
