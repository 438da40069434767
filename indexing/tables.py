"""Pipe tables in a file's text -> one line per row, each cell named by its column.

HTML (trafilatura), DOCX (Haystack's converter, markdown tables) and Markdown all reach the indexer with their
tables as pipe tables: a header row, a separator row (``|---|---|``), then one row per line. A reader trained
on prose finds a value by the words around it, and a pipe row has none: its column's name is lines away, often
in another passage. So each row is rewritten as a line that names its cells::

    | Preset | DictSize | CompMem |            Preset: -9; DictSize: 64 MiB; CompMem: 674 MiB.
    |---|---|---|                      ->
    | -9 | 64 MiB | 674 MiB |

The header row itself is dropped (every row now carries its names); an empty cell is left out, and a cell
without a column name stands alone. Outer pipes are optional, as in GitHub-flavoured Markdown
(``Preset | DictSize`` over ``--- | ---``). Only a header line with a separator row of as many cells under it
starts a table, and the table ends at the first line without a cell boundary, so shell pipelines, ASCII art and
prose with a "|" in it stay as written. Written by hand: Haystack's converters emit the pipe tables but have no
option to name the cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
# a cell boundary: a "|" that Markdown has not escaped
_BOUNDARY = re.compile(r"(?<!\\)\|")


def _is_row(line: str) -> bool:
    """Whether the line has a cell boundary: a pipe row, with or without outer pipes."""
    return bool(_BOUNDARY.search(line))


def _cells(line: str) -> list[str]:
    """The cells of a pipe row, stripped, with escaped pipes ("\\|") restored; outer pipes are optional."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in _BOUNDARY.split(inner)]


def _is_separator(line: str) -> bool:
    return _is_row(line) and all(_SEPARATOR_CELL.match(cell) for cell in _cells(line))


def _starts_table(header: str, separator: str) -> bool:
    """A header row over a separator row of as many cells (GitHub-flavoured Markdown's rule)."""
    return (_is_row(header) and not _is_separator(header) and _is_separator(separator)
            and len(_cells(header)) == len(_cells(separator)))


@dataclass(frozen=True)
class PipeTable:
    """One pipe table of a text: its column names and its data rows' cells, as written."""

    names: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class NamedRow:
    """A row as indexing writes it, and where each of its values lies in that line."""

    line: str
    #: (column number, start, end) of every cell kept, in order
    cells: list[tuple[int, int, int]]


def named_row(names: list[str], cells: list[str]) -> NamedRow:
    """``name: value; ...`` ending as a sentence ends; empty cells left out, cells past the header's width
    standing alone. ``line[start:end]`` is the cell's value for every entry of ``cells``."""
    line, spans = "", []
    for index, value in enumerate(cells):
        if not value:
            continue
        name = names[index] if index < len(names) else ""
        line += "; " if line else ""
        line += f"{name}: " if name else ""
        spans.append((index, len(line), len(line) + len(value)))
        line += value
    if line and line[-1] not in ".!?":
        line += "."
    return NamedRow(line, spans)


def _scan(text: str) -> Iterator[tuple[int, int, list[str] | None]]:
    """The text's lines in runs: (first line, end line, header names) for a table, (line, line + 1, None) else."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        if index + 1 < len(lines) and _starts_table(lines[index], lines[index + 1]):
            end = index + 2
            while end < len(lines) and _is_row(lines[end]):
                end += 1
            yield index, end, _cells(lines[index])
            index = end
        else:
            yield index, index + 1, None
            index += 1


def find_tables(text: str) -> list[PipeTable]:
    """The pipe tables of ``text`` (the rule ``name_table_cells`` reads them by), in order."""
    lines = text.split("\n")
    return [PipeTable(names, [_cells(line) for line in lines[first + 2 : end]])
            for first, end, names in _scan(text) if names is not None]


def name_table_cells(text: str) -> str:
    """``text`` with every pipe table's rows rewritten as lines naming their cells (``named_row``); all else
    unchanged.

    Invariants: text outside tables (and line endings between lines) is kept character for character; a table
    of ``n`` data rows becomes ``n`` lines (fewer only where a row is empty); a block without a separator row of
    as many cells under its first line is not a table and is kept as written."""
    lines = text.split("\n")
    out: list[str] = []
    for first, end, names in _scan(text):
        if names is None:
            out.append(lines[first])
            continue
        for line in lines[first + 2 : end]:
            row = named_row(names, _cells(line)).line
            if row:
                out.append(row + ("\r" if line.endswith("\r") else ""))
    return "\n".join(out)
