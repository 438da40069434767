"""scripts/table_questions.py: questions about the cells of real documents' tables, with contexts written as
indexing writes tables and answers at exact offsets."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from corpusqa.indexing.convert import convert

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "table_questions.py"
spec = importlib.util.spec_from_file_location("table_questions", SCRIPT)
table_questions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table_questions)

PRESETS = (
    "# xz presets\n\nThe presets:\n\n"
    "| Preset | DictSize | CompMem |\n|---|---|---|\n"
    "| -0 | 256 KiB | 3 MiB |\n| -6 | 8 MiB | 94 MiB |\n| -9 | 64 MiB | 674 MiB |\n| -9 | 64 MiB | 675 MiB |\n"
    "| -e | | Slower. |\n"
)


def _generate(tmp_path: Path, *extra: str) -> dict:
    output = tmp_path / "questions.json"
    assert table_questions.main(["--source", str(tmp_path / "docs"), "--output", str(output), *extra]) == 0
    return json.loads(output.read_text())


def test_each_answer_is_a_cell_of_its_row_at_an_exact_offset_in_the_indexed_text(tmp_path):
    docs = tmp_path / "docs" / "xz-utils"
    docs.mkdir(parents=True)
    (docs / "presets.md").write_text(PRESETS)
    data = _generate(tmp_path)
    [article] = data["data"]
    indexed = convert(docs / "presets.md")[0].content
    forward = set()
    for paragraph in article["paragraphs"]:
        assert paragraph["context"] in indexed, "contexts are the rows as indexing writes them"
        for qa in paragraph["qas"]:
            [answer] = qa["answers"]
            start = answer["answer_start"]
            assert paragraph["context"][start : start + len(answer["text"])] == answer["text"]
            if qa["id"].endswith("-key"):
                continue
            [(key, column)] = [(k, c) for k in ("-0", "-6", "-9", "-e") for c in ("DictSize", "CompMem")
                               if qa["question"] in {t.format(column=c, key=k) for t in table_questions.TEMPLATES}]
            forward.add((key, column, answer["text"]))
    assert forward == {
        ("-0", "DictSize", "256 KiB"), ("-0", "CompMem", "3 MiB"),
        ("-6", "DictSize", "8 MiB"), ("-6", "CompMem", "94 MiB"),
        ("-e", "CompMem", "Slower"),  # its closing full stop left out, as the reader trims it; its empty cell not asked
    }, "every cell of a row with a key of its own, and no other"


def test_gzipped_documents_are_read_and_excluded_packages_and_caps_hold(tmp_path):
    for package in ("xz-utils", "other"):
        folder = tmp_path / "docs" / package
        folder.mkdir(parents=True)
        (folder / "presets.md.gz").write_bytes(gzip.compress(PRESETS.encode()))
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"xz.1.html": {"source": "/usr/share/man/man1/xz.1.gz", "package": "xz-utils 5.4"}}))
    data = _generate(tmp_path, "--exclude-sources", str(sources), "--per-file", "3")
    assert [Path(a["title"]).parent.name for a in data["data"]] == ["other"]
    assert sum(len(p["qas"]) for p in data["data"][0]["paragraphs"]) == 3


def test_columns_that_share_a_name_each_answer_with_their_own_cell(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memory.md").write_text("| Preset | Memory | Memory |\n|---|---|---|\n| -0 | 3 MiB | 1 MiB |\n| -6 | 94 MiB | 9 MiB |\n")
    [article] = _generate(tmp_path)["data"]
    answers = set()
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            [answer] = qa["answers"]
            start = answer["answer_start"]
            assert paragraph["context"][start : start + len(answer["text"])] == answer["text"]
            answers.add(answer["text"])
    assert {"3 MiB", "1 MiB", "94 MiB", "9 MiB"} <= answers
