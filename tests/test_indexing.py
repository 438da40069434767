"""Indexing: files -> documents -> passages -> store, incrementally (corpusqa.indexing)."""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from corpus_fixtures import (
    DOCX_TITLE,
    HTML_TITLE,
    LATIN1_TEXT,
    MARKDOWN_HEADING,
    PDF_TITLE,
    TABLE_ROWS,
    bad_corpus,
    good_corpus,
    paragraphs,
    pdf_pages,
    small_files,
    write_huge_line,
    write_pdf,
)
from haystack import Document, Pipeline
from hostile_files import latin1_parts_list, make_fifo, nest_folders, remove_nested, write_docx_bomb

from corpusqa.indexing.convert import ConversionError, convert
from corpusqa.indexing.discovery import MAX_DEPTH, discover
from corpusqa.indexing.indexer import IndexSettings, index_paths, indexing_pipeline
from corpusqa.indexing.limits import MB, FileLimits
from corpusqa.indexing.split import PassageSplitter
from corpusqa.indexing.store import EmbeddedDocumentStore, RefusedFiles
from corpusqa.reader.hardware import CpuFeatures

TITLES = {"pdf": PDF_TITLE, "docx": DOCX_TITLE, "html": HTML_TITLE, "md": MARKDOWN_HEADING, "txt": "rhine"}
PASSAGE_META = {"file_path", "file_name", "file_type", "title", "source_id", "split_id", "split_idx_start"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """The good files, read-only for the tests that share them."""
    return good_corpus(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return bad_corpus(tmp_path_factory.mktemp("bad"))


@pytest.fixture
def store(tmp_path):
    with EmbeddedDocumentStore(tmp_path / "store") as opened:
        yield opened


def passages_of(store, path: Path) -> list[Document]:
    found = store.filter_documents({"field": "meta.file_path", "operator": "==", "value": str(path)})
    return sorted(found, key=lambda passage: passage.meta["split_id"])


def assert_offsets_point_into(text: str, passages: list[Document]) -> None:
    for passage in passages:
        start = passage.meta["split_idx_start"]
        assert text[start : start + len(passage.content)] == passage.content


# -- conversion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_type", ["pdf", "docx", "html", "md", "txt"])
def test_each_format_converts_to_one_document_with_file_meta_and_title(corpus, file_type):
    [document] = convert(corpus[file_type])
    assert document.meta["file_path"] == str(corpus[file_type]) and os.path.isabs(document.meta["file_path"])
    assert document.meta["file_name"] == corpus[file_type].name
    assert document.meta["file_type"] == file_type
    assert document.meta["title"] == TITLES[file_type]
    assert len(document.content.split()) > IndexSettings().split_length  # long enough to need splitting


def test_text_formats_record_their_encoding(corpus):
    assert convert(corpus["txt"])[0].meta["encoding"] == "utf-8"
    assert "Graubünden" in convert(corpus["txt"])[0].content


def test_pdf_pages_are_separated_by_form_feeds(corpus):
    pages = convert(corpus["pdf"])[0].content.split("\f")
    assert len(pages) == 3
    for page, written in zip(pages, pdf_pages(), strict=True):
        assert " ".join(page.split()) == " ".join(written.split())


ISOTOPE_LINES = "Isotope: Oxygen-15; Half-life: 122 seconds.\nIsotope: Oxygen-14; Half-life: 70.6 seconds."


def test_a_docx_table_is_read_row_by_row_with_each_cell_named(corpus):
    assert ISOTOPE_LINES in convert(corpus["docx"])[0].content


@pytest.mark.parametrize("name, source", [
    ("isotopes.html", "<!DOCTYPE html><html><head><title>Isotopes</title></head><body><article><h1>Isotopes</h1>"
     "<p>Oxygen has several radioactive isotopes, all short-lived; the longest-lived are listed below.</p><table>"
     + "".join(f"<tr><{c}>{a}</{c}><{c}>{b}</{c}></tr>" for c, (a, b) in zip(["th", "td", "td"], TABLE_ROWS))
     + "</table><p>The stable isotopes are oxygen-16, oxygen-17 and oxygen-18.</p></article></body></html>"),
    ("isotopes.md", "# Isotopes\n\nOxygen has several radioactive isotopes.\n\n"
     + "\n".join(f"| {a} | {b} |" for a, b in TABLE_ROWS[:1]) + "\n|---|---|\n"
     + "\n".join(f"| {a} | {b} |" for a, b in TABLE_ROWS[1:]) + "\n\nThe stable isotopes are oxygen-16 and 17.\n"),
])
def test_html_and_markdown_tables_read_as_the_docx_one_does(tmp_path, name, source):
    (tmp_path / name).write_text(source, encoding="utf-8")
    content = convert(tmp_path / name)[0].content
    assert ISOTOPE_LINES in content and "|" not in content


def test_markdown_title_is_the_front_matter_title_else_the_first_heading(tmp_path):
    (tmp_path / "titled.md").write_text("---\ntitle: Field notes\n---\n# Geology\n\nRocks are old.\n")
    (tmp_path / "untitled.md").write_text("---\nauthor: Ann\n---\nIntro.\n\n## Geology\n\nRocks are old.\n")
    [titled], [untitled] = convert(tmp_path / "titled.md"), convert(tmp_path / "untitled.md")
    assert (titled.meta["title"], untitled.meta["title"]) == ("Field notes", "Geology")
    assert "author:" not in untitled.content and "Rocks are old." in untitled.content


def test_legacy_encoded_text_is_decoded_not_dropped(bad):
    [document] = convert(bad["latin1"])
    assert document.content == LATIN1_TEXT
    assert bad["latin1"].read_bytes().decode(document.meta["encoding"]) == LATIN1_TEXT


def test_other_scripts_keep_the_detected_encoding(tmp_path):
    text = "Москва является столицей России и крупнейшим по численности населения городом страны. " * 3
    path = tmp_path / "moscow.txt"
    path.write_bytes(text.encode("cp1251"))
    assert convert(path)[0].content == text


def test_utf16_with_bom_is_text_not_binary(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_text("Notepad saved this as Unicode.", encoding="utf-16")
    assert convert(path)[0].content == "Notepad saved this as Unicode."


@pytest.mark.parametrize(
    ("name", "reason"),
    [("empty", "empty file"), ("corrupt_pdf", "corrupt PDF"), ("binary", "binary content")],
)
def test_bad_files_raise_conversion_error_with_reason(bad, name, reason):
    with pytest.raises(ConversionError) as raised:
        convert(bad[name])
    assert raised.value.path == str(bad[name])
    assert raised.value.reason.startswith(reason)


def test_pdf_without_text_is_an_error(tmp_path):
    path = write_pdf(tmp_path / "scan.pdf", [""], "A scanned page")
    with pytest.raises(ConversionError, match="no extractable text"):
        convert(path)


def test_file_with_only_whitespace_or_markup_has_no_text(tmp_path):
    (tmp_path / "blank.txt").write_text(" \n\n\t\n", encoding="utf-8")
    (tmp_path / "blank.md").write_text("---\ntitle: Only front matter\n---\n", encoding="utf-8")
    for name in ["blank.txt", "blank.md"]:
        with pytest.raises(ConversionError, match="no text after conversion"):
            convert(tmp_path / name)


def test_unsupported_file_named_directly_is_an_error(tmp_path):
    (tmp_path / "slides.pptx").write_bytes(b"PK\x03\x04")
    with pytest.raises(ConversionError, match="unsupported file type '.pptx'"):
        convert(tmp_path / "slides.pptx")


def test_discover_walks_folders_for_supported_files_skipping_hidden_and_the_store(tmp_path):
    for name in ["a.txt", "b.PDF", "c.htm", "d.markdown", "e.text", "sub/f.docx", "sub/deeper/g.md", "h.html"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    for name in ["notes.rtf", "image.png", ".hidden.txt", ".git/config.txt", "~$lock.docx", "store/passages.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = discover([tmp_path], exclude=[tmp_path / "store"]).files
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "a.txt", "b.PDF", "c.htm", "d.markdown", "e.text", "h.html", "sub/deeper/g.md", "sub/f.docx",
    ]  # fmt: skip
    # a file named directly is taken whatever its type; without exclude, the store folder is a folder like any
    named = [tmp_path / "notes.rtf", tmp_path / "store" / "passages.txt"]
    assert discover([tmp_path / "notes.rtf", tmp_path / "a.txt", tmp_path]).files == sorted([*named, *found])
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing"])


# -- splitting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_type", ["pdf", "docx", "html", "md", "txt"])
def test_passages_carry_file_meta_and_point_into_the_file_text(corpus, file_type):
    [document] = convert(corpus[file_type])
    passages = IndexSettings().splitter().run([document])["documents"]
    assert len(passages) > 1
    assert_offsets_point_into(document.content, passages)
    for split_id, passage in enumerate(passages):
        assert PASSAGE_META <= passage.meta.keys()
        assert passage.meta["split_id"] == split_id and passage.meta["source_id"] == document.id
        assert {key: passage.meta[key] for key in ["file_path", "file_name", "file_type", "title"]} == {
            key: document.meta[key] for key in ["file_path", "file_name", "file_type", "title"]
        }
        assert ("page_number" in passage.meta) == (file_type == "pdf")
        words = [word for word in passage.content.split(" ") if word]  # as the splitter counts them
        assert len(words) <= IndexSettings().split_length


def test_overlapping_passages_repeat_the_words_at_the_cut_and_keep_offsets(corpus):
    [document] = convert(corpus["pdf"])
    passages = PassageSplitter(split_length=40, split_overlap=10).run([document])["documents"]
    assert_offsets_point_into(document.content, passages)
    for before, after in zip(passages, passages[1:], strict=False):
        end = before.meta["split_idx_start"] + len(before.content)
        assert before.meta["split_idx_start"] < after.meta["split_idx_start"] < end
    # together they cover the whole text
    assert passages[0].meta["split_idx_start"] == 0
    assert passages[-1].meta["split_idx_start"] + len(passages[-1].content) == len(document.content)


def test_pdf_passages_know_their_page(corpus):
    [document] = convert(corpus["pdf"])
    text = document.content
    passages = PassageSplitter(split_length=60, split_overlap=10).run([document])["documents"]
    for passage in passages:
        first_char = passage.meta["split_idx_start"] + len(passage.content) - len(passage.content.lstrip("\f"))
        assert passage.meta["page_number"] == 1 + text.count("\f", 0, first_char)
    assert {passage.meta["page_number"] for passage in passages} == {1, 2, 3}
    # each page's opening words are on that page
    for page, opening in enumerate([p.split("\n")[0][:40] for p in pdf_pages()], start=1):
        holder = next(p for p in passages if opening in p.content.replace("\n", " "))
        assert holder.meta["page_number"] in (page - 1, page)


def test_a_heading_does_not_become_a_passage_of_its_own(corpus):
    [document] = convert(corpus["md"])
    passages = IndexSettings().splitter().run([document])["documents"]
    assert passages[0].content.startswith(f"{MARKDOWN_HEADING}\n\n") and len(passages[0].content.split()) > 100


def test_text_without_spaces_is_cut_by_characters_keeping_offsets_and_pages():
    text = "甲" * 3000 + "\f" + "乙" * 3000 + "\f\f" + "丙" * 3000
    splitter = PassageSplitter(split_length=100, split_overlap=10)
    document = Document(content=text, meta={"file_type": "pdf"})
    passages = splitter.run([document])["documents"]
    assert len(passages) > 1 and max(len(p.content) for p in passages) <= splitter.max_chars
    assert_offsets_point_into(text, passages)
    for passage in passages:
        first_char = passage.meta["split_idx_start"] + len(passage.content) - len(passage.content.lstrip("\f"))
        assert passage.meta["page_number"] == 1 + text.count("\f", 0, first_char)
    assert [p.meta["split_id"] for p in passages] == list(range(len(passages)))


# -- indexing -------------------------------------------------------------------------------------------


def test_first_run_indexes_every_file_and_a_second_run_skips_them_all(corpus, store):
    root = corpus["pdf"].parent
    first = index_paths([root], store, embed=False, progress=False)
    assert (first.indexed, first.skipped, first.failed, first.removed) == (5, 0, [], 0)
    assert first.passages == store.count_documents() == sum(r.passages for r in store.files())
    for path in corpus.values():
        [document] = convert(path)
        stored = passages_of(store, path)
        assert store.file_record(str(path)).passages == len(stored) > 0
        assert_offsets_point_into(document.content, stored)
    assert all(d.embedding is None for d in store.filter_documents())  # embed=False: BM25 only
    ids = sorted(d.id for d in store.filter_documents())

    second = index_paths([root], store, embed=False, progress=False)
    assert (second.indexed, second.skipped, second.passages) == (0, 5, 0)
    assert sorted(d.id for d in store.filter_documents()) == ids


def test_reread_indexes_unchanged_files_again_as_today_s_conversion_reads_them(tmp_path, store, monkeypatch):
    files = good_corpus(tmp_path / "docs")
    with monkeypatch.context() as earlier:  # an earlier version, which left tables as pipe rows
        earlier.setattr("corpusqa.indexing.convert.name_table_cells", lambda text: text)
        index_paths([tmp_path / "docs"], store, embed=False, progress=False)

    def in_docx() -> str:
        return " ".join(p.content for p in passages_of(store, files["docx"]))

    assert "| Oxygen-15 |" in in_docx()

    plain = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
    assert (plain.indexed, plain.skipped) == (0, 5) and "| Oxygen-15 |" in in_docx()

    reread = index_paths([tmp_path / "docs"], store, embed=False, progress=False, reread=True)
    assert (reread.indexed, reread.skipped, reread.failed) == (5, 0, [])
    assert "Isotope: Oxygen-15; Half-life: 122 seconds." in in_docx() and "| Oxygen-15 |" not in in_docx()
    assert store.count_documents() == sum(r.passages for r in store.files()) == reread.passages


def test_a_changed_file_alone_is_replaced(tmp_path, store):
    files = good_corpus(tmp_path / "docs")
    index_paths([tmp_path / "docs"], store, embed=False, progress=False)
    others = {path: [d.id for d in passages_of(store, path)] for name, path in files.items() if name != "txt"}

    files["txt"].write_text("\n\n".join(paragraphs("Amazon_rainforest", 3)), encoding="utf-8")
    report = index_paths([tmp_path / "docs"], store, embed=False, progress=False)

    assert (report.indexed, report.skipped) == (1, 4)
    replaced = passages_of(store, files["txt"])
    assert all("Rhine" not in p.content for p in replaced) and any("Amazon" in p.content for p in replaced)
    assert_offsets_point_into(convert(files["txt"])[0].content, replaced)
    assert {path: [d.id for d in passages_of(store, path)] for path in others} == others


def test_a_file_that_turns_bad_keeps_its_last_good_version_and_is_retried(tmp_path, store):
    path = tmp_path / "docs" / "rhine.txt"
    path.parent.mkdir()
    path.write_text("\n\n".join(paragraphs("Rhine", 2)), encoding="utf-8")
    index_paths([path.parent], store, embed=False, progress=False)
    before = [d.id for d in passages_of(store, path)]

    path.write_bytes(b"")
    for _ in range(2):
        report = index_paths([path.parent], store, embed=False, progress=False)
        assert (report.failed, report.skipped) == ([(str(path), "empty file")], 0)
    assert [d.id for d in passages_of(store, path)] == before


class RefusingStore(EmbeddedDocumentStore):
    """The embedded store, keeping the contract's ``RefusedFiles`` for the files at ``refused`` (what a server
    store does with documents it turns away): it writes the batch's other files, leaves those as they were,
    and names them. It stands in for no server: the indexer's side of the contract is what is tested."""

    refused: frozenset[str] = frozenset()

    def replace_files(self, batch):
        super().replace_files([(record, passages) for record, passages in batch if record.path not in self.refused])
        named = {record.path: f"refused passage {passages[0].id}: too large"
                 for record, passages in batch if record.path in self.refused}  # fmt: skip
        if named:
            raise RefusedFiles(str(self.path), named)


def test_a_file_the_store_refuses_fails_alone_stays_not_indexed_and_is_retried(tmp_path):
    files = good_corpus(tmp_path / "docs")
    with RefusingStore(tmp_path / "store") as store:
        store.refused = {str(files["pdf"])}
        report = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
        [(path, reason)] = report.failed
        assert path == str(files["pdf"]) and reason.startswith("refused passage ") and reason.endswith(": too large")
        assert report.indexed == len(files) - 1 and report.passages == store.count_documents()
        assert store.file_record(path) is None and passages_of(store, files["pdf"]) == []
        assert f"  failed: {path}: refused passage" in report.summary()

        store.refused = set()
        again = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
        assert (again.indexed, again.skipped, again.failed) == (1, len(files) - 1, [])
        assert store.file_record(path) is not None


def test_deleted_files_are_pruned_only_when_asked_and_only_under_the_given_roots(tmp_path, store):
    files = good_corpus(tmp_path / "docs")
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("# Elsewhere\n\nA file outside the indexed folder.\n", encoding="utf-8")
    index_paths([tmp_path / "docs", elsewhere], store, embed=False, progress=False)
    files["html"].unlink()

    kept = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
    assert kept.removed == 0 and store.file_record(str(files["html"])) is not None

    pruned = index_paths([tmp_path / "docs"], store, embed=False, prune=True, progress=False)
    assert (pruned.removed, pruned.skipped) == (1, 4)
    assert store.file_record(str(files["html"])) is None and passages_of(store, files["html"]) == []
    assert store.file_record(str(elsewhere)) is not None


def test_pruning_a_folder_that_holds_the_store_keeps_files_stored_inside_it(tmp_path):
    """The UI saves uploads under the store's folder, which discovery never walks: they are not 'gone'."""
    files = good_corpus(tmp_path / "docs")
    with EmbeddedDocumentStore(tmp_path / "docs" / ".corpusqa") as store:
        upload = store.path / "uploads" / "note.md"
        upload.parent.mkdir()
        upload.write_text("# Note\n\nAn uploaded note about the harbour.\n", encoding="utf-8")
        index_paths([upload], store, embed=False, progress=False)
        pruned = index_paths([tmp_path / "docs"], store, embed=False, prune=True, progress=False)
        assert pruned.removed == 0 and store.file_record(str(upload)) is not None
        files["md"].unlink()
        assert index_paths([tmp_path / "docs"], store, embed=False, prune=True, progress=False).removed == 1


def test_bad_files_do_not_stop_the_run_and_are_reported_with_reasons(corpus, bad, store):
    report = index_paths([corpus["pdf"].parent, bad["empty"].parent], store, embed=False, progress=False)
    reasons = dict(report.failed)
    assert reasons.keys() == {str(bad["empty"]), str(bad["corrupt_pdf"]), str(bad["binary"])}
    assert reasons[str(bad["empty"])] == "empty file"
    assert reasons[str(bad["corrupt_pdf"])].startswith("corrupt PDF")
    assert reasons[str(bad["binary"])].startswith("binary content")
    assert report.indexed == 6  # the five good files and the Latin-1 one
    assert passages_of(store, bad["latin1"])[0].content == LATIN1_TEXT
    summary = report.summary()
    assert "Indexed 6 files" in summary and "failed 3" in summary
    for path, reason in report.failed:
        assert f"{path}: {reason}" in summary


def test_a_huge_single_line_file_is_indexed_into_many_bounded_passages_quickly(tmp_path, store):
    path = write_huge_line(tmp_path / "huge.txt")
    started = time.perf_counter()
    report = index_paths([path], store, embed=False, progress=False)
    assert time.perf_counter() - started < 60
    assert report.indexed == 1 and report.passages > 3000
    [document] = convert(path)
    assert len(document.content) == 3_000_000 and "\n" not in document.content
    passages = passages_of(store, path)
    assert len(passages) == report.passages
    assert max(len(p.content.split()) for p in passages) <= IndexSettings().split_length
    assert max(len(p.content) for p in passages) <= IndexSettings().splitter().max_chars
    assert_offsets_point_into(document.content, passages)


def test_the_store_folder_inside_a_root_is_not_indexed(tmp_path):
    (tmp_path / "note.txt").write_text("The store lives beside the documents.", encoding="utf-8")
    with EmbeddedDocumentStore(tmp_path / "index") as store:
        (tmp_path / "index" / "leftover.txt").write_text("not a document", encoding="utf-8")
        report = index_paths([tmp_path], store, embed=False, progress=False)
        assert report.indexed == 1 and [r.path for r in store.files()] == [str(tmp_path / "note.txt")]


# -- hostile and broken files ----------------------------------------------------------------------------


@contextmanager
def deadline(seconds: float):
    """Raise TimeoutError in this (the main) thread after ``seconds``: a test of something that used to block
    for ever fails instead of hanging. SIGALRM interrupts a blocking open(), and the handler's error ends it."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_fifo_among_the_files_is_left_out_by_name_and_the_run_commits_the_rest(tmp_path, store):
    files = small_files(tmp_path / "docs", 2)
    fifo = make_fifo(tmp_path / "docs" / "pipe.txt")
    with deadline(60):
        report = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
    assert report.left_out == [(str(fifo), "not a regular file (a FIFO, socket or device): not read")]
    assert report.failed == [] and sorted(r.path for r in store.files()) == [str(f) for f in files]
    assert f"left out: {fifo}: not a regular file" in report.summary()


def test_a_fifo_that_replaces_a_file_after_discovery_is_refused_not_waited_on(tmp_path):
    fifo = make_fifo(tmp_path / "pipe.txt")
    with deadline(60), pytest.raises(ConversionError, match="not a regular file: a FIFO"):
        convert(fifo)


def test_folders_nested_past_the_depth_limit_are_left_out_and_the_rest_indexed(tmp_path, store):
    depth = 1100  # past Python's recursion limit, within the system's longest path
    deepest = nest_folders(tmp_path / "docs", depth)
    try:
        (deepest / "deep.txt").write_text("A file at the bottom of a well of folders.", encoding="utf-8")
        shallow = tmp_path / "docs" / "d" / "d" / "shallow.txt"
        shallow.write_text("A file two folders down.", encoding="utf-8")
        report = index_paths([tmp_path / "docs"], store, embed=False, progress=False)
        assert [r.path for r in store.files()] == [str(shallow)]
        [(folder, reason)] = report.left_out
        assert folder == str(tmp_path.joinpath("docs", *["d"] * (MAX_DEPTH + 1)))
        assert reason == f"folder nested more than {MAX_DEPTH} deep: not searched"
    finally:
        remove_nested(tmp_path / "docs", depth)


def test_a_symlinked_file_leading_outside_the_folders_is_left_out_unless_followed(tmp_path, store):
    secret = tmp_path / "outside" / "passwd.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:the administrator of this machine", encoding="utf-8")
    docs = tmp_path / "docs"
    [note] = small_files(docs, 1)
    (docs / "passwd.txt").symlink_to(secret)
    (docs / "again.txt").symlink_to(note)  # inside the folders indexed: read
    report = index_paths([docs], store, embed=False, progress=False)
    assert report.left_out == [(str(docs / "passwd.txt"), f"symlink to {secret}, outside the folders indexed: "
                                                          "not read (--follow-symlinks reads it)")]  # fmt: skip
    assert sorted(r.path for r in store.files()) == [str(docs / "again.txt"), str(note)]
    assert store.bm25("administrator machine", top_k=5) == []
    followed = index_paths([docs], store, embed=False, progress=False, follow_symlinks=True)
    assert followed.left_out == [] and followed.indexed == 1
    assert "administrator" in store.bm25("administrator machine", top_k=5)[0].content


def test_a_docx_bomb_fails_alone_in_bounded_time_and_memory(tmp_path):
    """A DOCX of a few hundred KB inflating to 200 MB of paragraphs: refused before python-docx inflates it."""
    bomb = write_docx_bomb(tmp_path / "bomb.docx", inflated=200 * MB)
    assert bomb.stat().st_size < MB
    probe = (
        "import json, resource, sys, time\n"
        "from corpusqa.indexing.convert import ConversionError, convert\n"
        "before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()\n"
        "try:\n    convert(sys.argv[1])\n    reason = None\n"
        "except ConversionError as error:\n    reason = error.reason\n"
        "grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024\n"
        "print(json.dumps({'reason': reason, 'seconds': time.perf_counter() - started, 'grown_mb': grown}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["reason"].startswith("inflates to 200.") and found["reason"].endswith(
        " MB, past the limit of 128.0 MB (a zip bomb?)"), found["reason"]
    assert found["seconds"] < 2 and found["grown_mb"] < 50, found


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (FileLimits(max_file_bytes=1000), "larger than the limit of 0.0 MB"),
        (FileLimits(max_characters=1000), "characters of text, past the limit of 1,000"),
        (FileLimits(max_passages=2), "passages, past the limit of 2"),
    ],
)
def test_a_file_past_a_limit_fails_alone_with_the_limit_named(tmp_path, store, limits, reason):
    [short] = small_files(tmp_path / "docs", 1)
    long = write_huge_line(tmp_path / "docs" / "long.txt", size=20_000)
    report = index_paths([tmp_path / "docs"], store, settings=IndexSettings(limits=limits), embed=False,
                         progress=False)  # fmt: skip
    [(path, why)] = report.failed
    assert path == str(long) and reason in why
    assert [r.path for r in store.files()] == [str(short)]


def test_latin1_text_that_detection_gives_up_on_is_decoded_as_windows_1252(tmp_path):
    text = latin1_parts_list()
    path = tmp_path / "pieces.txt"
    path.write_bytes(text.encode("latin-1"))
    [document] = convert(path)
    assert document.content == text and document.meta["encoding"] == "cp1252"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_told_by_its_nul_bytes(tmp_path, encoding):
    text = "Notepad saved this as Unicode, without a byte order mark.\nSecond line, déjà vu."
    path = tmp_path / "windows.txt"
    path.write_bytes(text.encode(encoding))
    [document] = convert(path)
    assert document.content == text and document.meta["encoding"] == encoding


def test_bytes_that_no_encoding_turns_into_text_stay_binary(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "noise.txt"
    path.write_bytes(bytes(rng.randrange(1, 256) for _ in range(4096)))  # no NUL, not UTF-8
    with pytest.raises(ConversionError, match="binary content"):
        convert(path)
    path.write_bytes(struct.pack("<1000h", *(rng.randrange(0, 200) for _ in range(1000))))  # NULs, not UTF-16
    with pytest.raises(ConversionError, match="binary content"):
        convert(path)


class _CountingStore:
    """The real store, counting transactions."""

    def __init__(self, store):
        self.store, self.batches = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def replace_files(self, batch):
        self.batches.append([record.path for record, _ in batch])
        self.store.replace_files(batch)


class _FailingEmbedder:
    """Embeds with zeros-and-one vectors, and fails on call number `fail_on`: a crash mid-run."""

    def __init__(self, fail_on: int | None = None):
        self.calls, self.fail_on = 0, fail_on

    def run(self, documents):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("killed")
        return {"documents": [Document(id=d.id, content=d.content, meta=d.meta, embedding=[1.0, 0.0]) for d in documents]}


def test_files_are_committed_in_batches_and_a_crash_keeps_the_committed_ones(tmp_path, store):
    files = good_corpus(tmp_path / "docs")
    settings = IndexSettings(commit_files=2)
    counting = _CountingStore(store)
    with pytest.raises(RuntimeError, match="killed"):
        index_paths([tmp_path / "docs"], counting, _FailingEmbedder(fail_on=2), settings=settings, progress=False)
    assert len(counting.batches) == 1 and len(counting.batches[0]) == 2
    committed = {record.path for record in store.files()}
    assert committed == set(counting.batches[0])
    assert all(len(passages_of(store, Path(path))) > 0 for path in committed)

    counting.batches.clear()
    report = index_paths([tmp_path / "docs"], counting, _FailingEmbedder(), settings=settings, progress=False)
    assert (report.skipped, report.indexed) == (2, 3)
    assert [len(batch) for batch in counting.batches] == [2, 1]
    assert {record.path for record in store.files()} == {str(path) for path in files.values()}


def test_a_batch_closes_at_the_passage_limit_too(corpus, store):
    counting = _CountingStore(store)
    settings = IndexSettings(commit_passages=5)
    index_paths([corpus["pdf"].parent], counting, embed=False, settings=settings, progress=False)
    for batch in counting.batches[:-1]:
        assert sum(store.file_record(path).passages for path in batch) >= 5
        assert sum(store.file_record(path).passages for path in batch[:-1]) < 5


def test_real_embedder_stores_unit_vectors_that_find_the_right_passage(corpus, store):
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersTextEmbedder,
    )

    settings = IndexSettings()
    report = index_paths([corpus["txt"], corpus["md"]], store, settings=settings, progress=False)
    assert report.indexed == 2
    stored = store.filter_documents()
    assert all(len(d.embedding) == 384 and abs(np.linalg.norm(d.embedding) - 1) < 1e-4 for d in stored)

    query = SentenceTransformersTextEmbedder(model=settings.embedder().model, normalize_embeddings=True)
    embedding = query.run("Which Swiss canton does the Rhine begin in?")["embedding"]
    assert store.dense(embedding, top_k=1)[0].meta["file_type"] == "txt"
    embedding = query.run("What are the three major types of rock?")["embedding"]
    assert store.dense(embedding, top_k=1)[0].meta["file_type"] == "md"


def test_the_pipeline_face_yields_the_passages_index_paths_stores(corpus, bad, store):
    sources = [*corpus.values(), bad["empty"]]
    pipeline = Pipeline.loads(indexing_pipeline(embed=False).dumps(), allowed_modules=["corpusqa"])  # YAML round trip
    result = pipeline.run({"converter": {"sources": sources}})
    assert result["converter"]["failures"] == [(str(bad["empty"]), "empty file")]

    index_paths(list(corpus.values()), store, embed=False, progress=False)
    piped = sorted((d.id, d.content) for d in result["splitter"]["documents"])
    assert piped == sorted((d.id, d.content) for d in store.filter_documents())


def test_the_store_remembers_the_roots_given_resolved_and_outermost(tmp_path, store):
    """So the search UI can serve original files from under them and from nowhere else."""
    (tmp_path / "docs" / "hr").mkdir(parents=True)
    (tmp_path / "docs" / "hr" / "a.txt").write_text("Holidays are in August.", encoding="utf-8")
    (tmp_path / "alias").symlink_to(tmp_path / "docs", target_is_directory=True)
    index_paths([tmp_path / "alias" / "hr"], store, embed=False, progress=False)
    assert store.roots() == [str((tmp_path / "docs" / "hr").resolve())]
    index_paths([tmp_path / "docs"], store, embed=False, progress=False)
    index_paths([tmp_path / "docs" / "hr" / "a.txt"], store, embed=False, progress=False)
    assert store.roots() == [str((tmp_path / "docs").resolve())]


class PrecisionProbe:
    """A document embedder that records the CPU autocast dtype it ran under (None: none)."""

    def __init__(self):
        self.dtypes = []

    def run(self, documents: list[Document]) -> dict:
        import torch

        self.dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return {"documents": [replace(d, embedding=[1.0, 0.0]) for d in documents]}


@pytest.mark.parametrize(("amx", "expected"), [(True, "torch.bfloat16"), (False, None)])
def test_passages_are_embedded_in_bf16_on_cpus_with_amx_and_in_fp32_elsewhere(corpus, store, monkeypatch, amx, expected):
    """Without onnxruntime; with it, CPUs without AMX embed passages in int8 (tests/test_int8_embedder.py)."""
    monkeypatch.setattr("corpusqa.reader.hardware.cpu_features", lambda: CpuFeatures(amx_bf16=amx))
    monkeypatch.setattr("corpusqa.reader.hardware.int8_available", lambda: False)
    monkeypatch.delenv("CORPUSQA_EMBED_PRECISION", raising=False)
    probe = PrecisionProbe()
    index_paths([corpus["txt"]], store, embedder=probe, progress=False)
    assert [None if d is None else str(d) for d in probe.dtypes] == [expected]


def test_an_index_run_bounds_onednn_s_cache_of_shapes_unless_the_user_set_it(corpus, store, monkeypatch):
    """Passages of every length make one oneDNN primitive each; the bound costs a querying process's reader
    time, so only index runs set it."""
    from corpusqa.indexing.embedding import ONEDNN_CACHE, ONEDNN_CACHE_SIZE, embedding_precision

    monkeypatch.setattr("corpusqa.reader.hardware.cpu_features", lambda: CpuFeatures(amx_bf16=True))
    monkeypatch.delenv("CORPUSQA_EMBED_PRECISION", raising=False)
    monkeypatch.setenv(ONEDNN_CACHE, "")  # so that teardown restores the variable as it was
    monkeypatch.delenv(ONEDNN_CACHE)
    with embedding_precision():
        assert ONEDNN_CACHE not in os.environ, "a question's embedding leaves it alone"
    index_paths([corpus["txt"]], store, embedder=PrecisionProbe(), progress=False)
    assert os.environ[ONEDNN_CACHE] == ONEDNN_CACHE_SIZE
    monkeypatch.setenv(ONEDNN_CACHE, "512")
    index_paths([corpus["md"]], store, embedder=PrecisionProbe(), progress=False)
    assert os.environ[ONEDNN_CACHE] == "512"
