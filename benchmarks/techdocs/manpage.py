"""Man pages as text, and as blocks (headings, paragraphs, tables) for the other formats.

A page is rendered with groff-base's ``groff -man -Tutf8`` (what ``man`` runs, without hyphenation or
justification, 100 columns) and its typographic quotes and hyphens mapped to ASCII, so a command line reads as
typed. For the formats that have tables (HTML, Markdown, DOCX), each ``.TS``/``.TE`` block of the source is
taken out before rendering, left as a placeholder line, and parsed into rows by ``parse_tbl``. Text the page
sets without filling (``.nf``/``.fi``, ``.EX``/``.EE``: code, examples, the compact tables of ascii(7)) is
marked before rendering and kept line by line, as a preformatted block.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_TABLE = re.compile(r"^\.TS\b.*?^\.TE\b[^\n]*\n?", re.DOTALL | re.MULTILINE)
_PLACEHOLDER = re.compile(r"^\s*@@TABLE(\d+)@@\s*$")
# no-fill text: opened by .nf or .EX, closed by .fi or .EE; marked by a line after the opening request and a
# line before the closing one, which groff prints as they are (no-fill mode)
_NO_FILL_START, _NO_FILL_END = re.compile(r"^\.\s*(nf|EX)\b"), re.compile(r"^\.\s*(fi|EE)\b")
_PRE_START, _PRE_END = "@@PRE@@", "@@/PRE@@"
_ASCII = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
# troff escapes a table cell may hold, and what they print
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\[aq\]|\\\(aq"), "'"),
    (re.compile(r"\\\[dq\]|\\\(dq"), '"'),
    (re.compile(r"\\\[ha\]|\\\(ha"), "^"),
    (re.compile(r"\\\[ti\]|\\\(ti"), "~"),
    (re.compile(r"\\\[em\]|\\\(em"), "\u2014"),
    (re.compile(r"\\\*?\[[^\]]*\]|\\\(..|\\\*\(..|\\\*."), ""),  # other named glyphs and strings
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[&0|^%]"), ""),
    (re.compile(r"\\`"), "`"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\ "), " "),
]


@dataclass(frozen=True)
class Block:
    """``kind`` is "heading" (level 2 or 3), "para", "pre" (``text`` keeps its lines) or "table" (``rows``, the
    first one the header)."""

    kind: str
    text: str = ""
    level: int = 2
    rows: tuple[tuple[str, ...], ...] = ()


def source(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", errors="replace")


def render(troff: str, width: int = 100) -> str:
    """The page as ``man`` prints it to a pipe, ASCII hyphens and quotes, no header and footer lines."""
    # no hyphenation, no justification, and pages (man or mdoc) cannot turn them back on
    unjustified = ".nh\n.na\n.de hy\n..\n.de ad\n..\n" + troff
    result = subprocess.run(
        ["groff", "-k", "-t", "-mandoc", "-Tutf8", f"-rLL={width}n", "-P-cbou"],
        input=unjustified.encode(),
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    lines = result.stdout.decode().translate(_ASCII).splitlines()
    # groff's first and last lines are the page header and footer ("TAR(1)  GNU TAR Manual  TAR(1)")
    body = lines[1:-1] if len(lines) > 2 else lines
    return "\n".join(body).strip("\n") + "\n"


def blocks(troff: str) -> list[Block]:
    """The rendered page cut into headings, paragraphs (dedented, lines joined), preformatted blocks (dedented,
    lines kept) and its tbl tables."""
    tables: list[tuple[tuple[str, ...], ...]] = []

    def hold(match: re.Match) -> str:
        tables.append(parse_tbl(match.group(0)))
        return f".PP\n@@TABLE{len(tables) - 1}@@\n.PP\n"

    text = render(_mark_no_fill(_TABLE.sub(hold, troff)))
    result: list[Block] = []
    lines: list[str] = []
    first, column = "", 0  # the paragraph's first line, and the column its next lines start at
    pre: list[str] | None = None  # the lines of a preformatted block being read

    def flush() -> None:
        if lines:
            joined = lines[0]
            for line in lines[1:]:  # a line broken after a hyphen ("per-" / "packet") joins without a space
                joined += ("" if re.search(r"[a-z]-$", joined) and line[:1].islower() else " ") + line
            result.append(Block("para", " ".join(joined.split())))
            lines.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if pre is not None:
            if stripped == _PRE_END:
                result.extend(_pre_block(pre))
                pre = None
            else:
                pre.append(line.rstrip())
            continue
        if stripped == _PRE_START:
            flush()
            pre = []
            continue
        if stripped == _PRE_END:  # a closing request with no block open
            continue
        own = len(line) - len(line.lstrip())
        table = _PLACEHOLDER.match(line)
        if lines and stripped and not table and own >= 7:
            # a hanging paragraph ("lc=lc  Specify the...", "\u2022  DictSize is...") goes on at its text's column
            hanging = len(lines) == 1 and own > column and first[own - 1] == " " and first[own] != " "
            if own == column or hanging:
                column = own
                lines.append(stripped)
                continue
        flush()
        if table:
            rows = tables[int(table.group(1))]
            if rows:
                result.append(Block("table", rows=rows))
        elif stripped and own < 7:
            result.append(Block("heading", stripped, level=2 if own == 0 else 3))
        elif stripped:
            lines.append(stripped)
            first, column = line, own
    flush()
    if pre is not None:
        result.extend(_pre_block(pre))
    return result


def _mark_no_fill(troff: str) -> str:
    """``troff`` with a start line after each request that opens no-fill text and an end line before each
    that closes it (a request that does not change the mode, such as a second ``.nf``, gets none)."""
    out, open_ = [], False
    for line in troff.splitlines():
        if _NO_FILL_END.match(line) and open_:
            out.append(_PRE_END)
            open_ = False
        out.append(line)
        if _NO_FILL_START.match(line) and not open_:
            out.append(_PRE_START)
            open_ = True
    return "\n".join(out) + "\n"


def _pre_block(lines: list[str]) -> list[Block]:
    """A preformatted block of ``lines``, dedented, without leading and trailing blank lines (none if empty)."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return [Block("pre", "\n".join(line[indent:] for line in lines))]


def parse_tbl(table: str) -> tuple[tuple[str, ...], ...]:
    """A tbl table's rows of cell text: options and format lines, rules and requests dropped, ``T{ T}`` text
    blocks joined into their cell, a row whose first cell is empty (a cell's second line) merged into the
    row above."""
    lines = table.splitlines()[1:-1]  # without .TS and .TE
    tab = "\t"
    if lines and lines[0].rstrip().endswith(";"):
        found = re.search(r"tab\s*\((.)\)", lines[0])
        tab = found.group(1) if found else tab
        lines = lines[1:]
    rows, logical, in_format, in_block = [], "", True, False
    for line in lines:
        if in_format:  # format lines end with "."; so does the format after a .T&
            in_format = not line.rstrip().endswith(".")
            continue
        if in_block:
            if line.startswith("T}"):
                in_block, line = False, line[2:]
            else:
                words = re.sub(r"^\.(br|sp)\b.*", "", re.sub(r"^\.[A-Z]{1,2}\s+", "", line))
                logical += " " + words
                continue
            logical += line
        elif line.startswith(".T&"):
            in_format = True
            continue
        elif line.startswith(".") or line.strip() in {"_", "=", ""}:
            continue
        else:
            logical = line
        if logical.endswith("T{"):
            logical, in_block = logical[:-2], True
            continue
        rows.append([_clean(cell) for cell in logical.split(tab)])
        logical = ""
    merged: list[list[str]] = []
    for row in rows:
        if merged and not row[0] and any(row):
            above = merged[-1]
            above.extend([""] * (len(row) - len(above)))
            for number, cell in enumerate(row):
                above[number] = f"{above[number]} {cell}".strip()
        else:
            merged.append(row)
    width = max((len(row) for row in merged), default=0)
    return tuple(tuple(row + [""] * (width - len(row))) for row in merged)


def _clean(cell: str) -> str:
    for pattern, replacement in _ESCAPES:
        cell = pattern.sub(replacement, cell)
    return " ".join(cell.split())
