"""Files -> Haystack Documents: one Document per file, its text from Haystack's converters.

Haystack's converters log and skip a file they cannot read; here a bad file raises `ConversionError` with
the reason, so the indexer can report it and go on; so does a file past its `FileLimits` (see limits.py).
Tables reach the text as pipe tables, whose rows are then rewritten to name their cells (tables.py). Each
Document's meta: `file_path` (absolute), `file_name`, `file_type`, `title` and, for plain text and Markdown,
the `encoding` it was decoded with.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import lxml.html
from haystack import Document, component
from haystack.components.converters import (
    DOCXToDocument,
    HTMLToDocument,
    MarkdownToDocument,
    PyPDFToDocument,
    TextFileToDocument,
)
from haystack.dataclasses import ByteStream
from markdown_it import MarkdownIt
from pypdf import PdfReader

from corpusqa.indexing.encoding import detect_encoding
from corpusqa.indexing.errors import ConversionError
from corpusqa.indexing.limits import FileLimits, check_characters, check_inflated, read_file
from corpusqa.indexing.tables import name_table_cells

FILE_TYPES = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".text": "txt",
}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _only(documents: list[Document], path: Path, reason: str) -> str:
    """The text of a converter's single output; a converter that skipped the file returns none."""
    if not documents:
        raise ConversionError(path, reason)
    return documents[0].content or ""


def _pdf(data: bytes, path: Path) -> tuple[str, str | None, dict]:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ConversionError(path, "encrypted PDF (needs a password)")
        page_count = len(reader.pages)
        title = reader.metadata.title if reader.metadata else None
    except ConversionError:
        raise
    except Exception as error:  # pypdf raises many types for broken files
        raise ConversionError(path, f"corrupt PDF ({type(error).__name__}: {error})") from error
    if page_count == 0:
        raise ConversionError(path, "PDF has no pages")
    # The converter reads the file again: this first read is for the reason a bad PDF fails, and the title.
    # Its pages are separated by "\f", which the splitter counts to number each passage's page.
    text = _only(_PDF.run(sources=[ByteStream(data)])["documents"], path, "corrupt PDF: pypdf cannot read its pages")
    if not text.replace("\f", "").strip():
        raise ConversionError(path, "PDF has no extractable text (scanned images? run OCR first)")
    return text, title, {}


def _docx(data: bytes, path: Path) -> tuple[str, str | None, dict]:
    documents = _DOCX.run(sources=[ByteStream(data)])["documents"]
    text = _only(documents, path, "corrupt DOCX: python-docx cannot open it")
    return text, documents[0].meta["docx"]["title"], {}


def _html(data: bytes, path: Path) -> tuple[str, str | None, dict]:
    text = _only(_HTML.run(sources=[ByteStream(data)])["documents"], path, "no text could be extracted from the HTML")
    try:
        title = lxml.html.document_fromstring(data).findtext(".//title")
    except Exception:  # a page trafilatura reads but lxml does not: the title falls back to the file name
        title = None
    return text, title, {}


def _markdown(data: bytes, path: Path) -> tuple[str, str | None, dict]:
    encoding = detect_encoding(data, path)
    documents = _MARKDOWN.run(sources=[ByteStream(data, meta={"encoding": encoding})])["documents"]
    text = _only(documents, path, f"cannot decode as {encoding}")
    # a YAML front-matter title wins over the first heading
    title = documents[0].meta.get("title") or _first_heading(data.decode(encoding))
    return text, title, {"encoding": encoding}


def _first_heading(markdown: str) -> str | None:
    # front matter's closing "---" would make its last line a heading
    tokens = MarkdownIt().parse(_FRONT_MATTER.sub("", markdown, count=1))
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type == "heading_open":
            return inline.content
    return None


def _text(data: bytes, path: Path) -> tuple[str, str | None, dict]:
    encoding = detect_encoding(data, path)
    documents = _TEXT.run(sources=[ByteStream(data, meta={"encoding": encoding})])["documents"]
    return _only(documents, path, f"cannot decode as {encoding}"), None, {"encoding": encoding}


_PDF = PyPDFToDocument()
# DOCX tables as pipe tables, as HTML's and Markdown's arrive, so that name_table_cells rewrites them all.
_DOCX = DOCXToDocument(table_format="markdown")
_HTML = HTMLToDocument()
_MARKDOWN = MarkdownToDocument(progress_bar=False, extract_frontmatter=True)
_TEXT = TextFileToDocument()
_CONVERTERS = {"pdf": _pdf, "docx": _docx, "html": _html, "md": _markdown, "txt": _text}


def source_text(path: Path, limits: FileLimits = FileLimits(), data: bytes | None = None) -> tuple[str, str | None, dict]:
    """The file's text as its format's converter gives it, tables still pipe tables, with its title (or None) and
    format meta (the encoding); raises ConversionError for a bad file, or one past ``limits``. ``data``: the
    file's bytes, when the caller has read them (see ``read_file``)."""
    path = Path(os.path.abspath(path))
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        raise ConversionError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")
    if data is None:
        data = read_file(path, limits)
    if not data:
        raise ConversionError(path, "empty file")
    if file_type == "docx":
        check_inflated(data, path, limits)
    return _CONVERTERS[file_type](data, path)


def convert(path: Path, limits: FileLimits = FileLimits(), data: bytes | None = None) -> list[Document]:
    """The file's text as Documents (one per file) with file meta: ``source_text`` with its tables read row by
    row (``name_table_cells``); raises ConversionError for a bad file, or one past ``limits``."""
    path = Path(os.path.abspath(path))
    text, title, extra = source_text(path, limits, data)
    text = name_table_cells(text)
    file_type = FILE_TYPES[path.suffix.lower()]
    check_characters(text, path, limits)
    if not text.strip():
        raise ConversionError(path, "no text after conversion")
    meta = {
        "file_path": str(path),
        "file_name": path.name,
        "file_type": file_type,
        "title": str(title or "").strip() or path.stem,
        **extra,
    }
    return [Document(content=text, meta=meta)]


@component
class FileConverter:
    """Pipeline face of `convert`: files of any supported type -> Documents, and the files that failed, with why."""

    @component.output_types(documents=list[Document], failures=list[tuple[str, str]])
    def run(self, sources: list[Path]) -> dict:
        documents, failures = [], []
        for source in sources:
            try:
                documents.extend(convert(Path(source)))
            except ConversionError as error:
                failures.append((error.path, error.reason))
        return {"documents": documents, "failures": failures}
