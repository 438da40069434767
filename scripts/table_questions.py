"""Training questions about tables: SQuAD-format examples that teach a reader to read rows of named cells.

    python scripts/table_questions.py --source /usr/share/doc --exclude-sources runs/techdocs/sources.json \
        --output runs/table-questions.json

Indexing writes each table row as a line naming its cells (``Preset: -7; DictSize: 16 MiB; CompMem: 186 MiB.``),
a format no SQuAD paragraph has. This script finds the tables of real documents, converted as indexing converts
them (``source_text``; ``.gz`` files are read decompressed), and asks about their cells by the row's first cell
(its key) and the column's name, the way people ask about tables:

    What is the DictSize of -7?              -> 16 MiB
    Which Preset has a DictSize of 16 MiB?   -> -7      (only where the value is unique in its column)

Each context is a run of at most ``ROWS_PER_CONTEXT`` rows as indexing writes them (``named_row``), with exact
answer offsets (a value's closing full stop left out, as the reader trims it); at most ``--per-file`` questions
come from one file. Left out: tables of fewer than two rows or columns, keys that repeat within a table, cells
empty or longer than ``MAX_WORDS`` words, and column names that are not words. ``--exclude-sources`` takes a
techdocs ``sources.json`` and skips every file of the packages that corpus draws on, so that no evaluation
document becomes training data. Output: one SQuAD v1.1 file, one article per source file, to train on alone
or merged with SQuAD (``corpusqa train --train``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import random
import sys
from collections import Counter
from pathlib import Path

from corpusqa.indexing.convert import FILE_TYPES, source_text
from corpusqa.indexing.errors import ConversionError
from corpusqa.indexing.tables import PipeTable, find_tables, named_row

ROWS_PER_CONTEXT = 12
MAX_WORDS = 8
#: A value asked back for its key ("Which Preset has a DictSize of 16 MiB?") is short.
MAX_REVERSE_WORDS = 4
#: Sentence punctuation a value ends with; the reader trims it from answers, so labels leave it out too.
TRAILING = ".,;:!?"
TEMPLATES = ("What is the {column} of {key}?", "What is the {column} for {key}?", "What {column} does {key} have?")
REVERSE = "Which {key_column} has a {column} of {value}?"


def table_files(sources: list[Path], excluded_packages: set[str]) -> list[Path]:
    """Files under the sources that corpusqa reads (plain or gzipped), outside excluded packages' folders."""
    found = []
    for source in sources:
        for path in sorted(source.rglob("*") if source.is_dir() else [source]):
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            if path.is_file() and Path(name).suffix.lower() in FILE_TYPES and not excluded_packages & set(path.parts):
                found.append(path)
    return found


def excluded(sources_json: Path | None) -> set[str]:
    """The package names a techdocs corpus draws on (``"package": "xz-utils 5.4.1-0.2"`` -> ``xz-utils``)."""
    if sources_json is None:
        return set()
    origins = json.loads(sources_json.read_text(encoding="utf-8"))
    return {origin["package"].split()[0] for origin in origins.values()}


def file_tables(path: Path) -> list[PipeTable]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data, path = gzip.decompress(data), path.with_name(path.name[:-3])
    try:
        text, _, _ = source_text(path, data=data)
    except ConversionError:
        return []
    return find_tables(text)


def _usable(cell: str) -> bool:
    return bool(cell) and len(cell.split()) <= MAX_WORDS and any(c.isalnum() for c in cell)


def table_paragraphs(table: PipeTable, rng: random.Random, per_table: int, prefix: str) -> list[dict]:
    """SQuAD paragraphs (context and questions) about one table; at most ``per_table`` questions."""
    names = table.names
    if len(names) < 2 or len(table.rows) < 2 or not names[0] or not any(c.isalpha() for c in names[0]):
        return []
    keys = Counter(row[0] for row in table.rows if row)
    columns = [c for c in range(1, len(names)) if names[c] and any(ch.isalpha() for ch in names[c])]
    values = {c: Counter(row[c] for row in table.rows if c < len(row)) for c in columns}
    asked = []
    for index, row in enumerate(table.rows):
        key = row[0] if row else ""
        if not _usable(key) or keys[key] > 1:
            continue
        for c in columns:
            if c < len(row) and _usable(row[c]):
                asked.append((index, c))
    rng.shuffle(asked)
    chosen = sorted(asked[:per_table])
    paragraphs = []
    for begin in range(0, len(table.rows), ROWS_PER_CONTEXT):
        rows = [named_row(names, cells) for cells in table.rows[begin : begin + ROWS_PER_CONTEXT]]
        starts, context = [], ""
        for row in rows:
            starts.append(len(context))
            context += row.line + "\n"
        qas = []
        for index, c in chosen:
            if not begin <= index < begin + ROWS_PER_CONTEXT:
                continue
            row, start = rows[index - begin], starts[index - begin]
            spans = {column: a for column, a, _ in row.cells}
            key, value = table.rows[index][0], table.rows[index][c]
            a = spans[c]
            question = rng.choice(TEMPLATES).format(column=names[c], key=key)
            qas.append(_qa(f"{prefix}-{index}-{c}", question, _answer(value), start + a))
            if values[c][value] == 1 and len(value.split()) <= MAX_REVERSE_WORDS and rng.random() < 0.5:
                a = spans[0]
                question = REVERSE.format(key_column=names[0], column=names[c], value=_answer(value))
                qas.append(_qa(f"{prefix}-{index}-{c}-key", question, _answer(key), start + a))
        if qas:
            paragraphs.append({"context": context.rstrip("\n"), "qas": qas})
    return paragraphs


def _answer(cell: str) -> str:
    """The cell without the sentence punctuation it ends with, if a letter or digit is left."""
    trimmed = cell.rstrip(TRAILING)
    return trimmed if any(c.isalnum() for c in trimmed) else cell


def cap_questions(paragraphs: list[dict], most: int, rng: random.Random) -> list[dict]:
    """At most ``most`` questions of a file, chosen at random: no one document's tables dominate."""
    total = sum(len(p["qas"]) for p in paragraphs)
    if total <= most:
        return paragraphs
    kept = set(rng.sample(range(total), most))
    capped, number = [], 0
    for paragraph in paragraphs:
        qas = [qa for offset, qa in enumerate(paragraph["qas"], number) if offset in kept]
        number += len(paragraph["qas"])
        if qas:
            capped.append({"context": paragraph["context"], "qas": qas})
    return capped


def _qa(qid: str, question: str, answer: str, start: int) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": start}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, action="append", required=True, help="file or folder, repeatable")
    parser.add_argument("--exclude-sources", type=Path, help="a techdocs sources.json: skip its packages' files")
    parser.add_argument("--output", type=Path, required=True, help="SQuAD v1.1 file to write")
    parser.add_argument("--per-table", type=int, default=40, help="questions per table at most (default 40)")
    parser.add_argument("--per-file", type=int, default=120, help="questions per file at most (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("haystack").setLevel(logging.ERROR)  # converters' notes on files without text or tables
    rng = random.Random(args.seed)
    articles, tables = [], 0
    for path in table_files(args.source, excluded(args.exclude_sources)):
        prefix = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        paragraphs = []
        for number, table in enumerate(file_tables(path)):
            found = table_paragraphs(table, rng, args.per_table, f"table-{prefix}-{number}")
            tables += bool(found)
            paragraphs += found
        paragraphs = cap_questions(paragraphs, args.per_file, rng)
        if paragraphs:
            articles.append({"title": str(path), "paragraphs": paragraphs})
    questions = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    print(f"{questions} questions on {tables} tables of {len(articles)} files -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
