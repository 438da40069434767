"""Files -> Haystack Documents: one Document per file, its text from Haystack's converters.

Haystack's converters log and skip a file they cannot read; here a bad file raises `ConversionError` with
the reason, so the indexer can report it and go on. Each Document's meta: `file_path` (absolute), `file_name`,
`file_type`, `title` and, for plain text and Markdown, the `encoding` it was decoded with.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import charset_normalizer
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
# BOMs that make NUL bytes legitimate: UTF-16 and UTF-32 text (UTF-32 first: its LE BOM starts like UTF-16's).
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_WIDE_BOMS = {codecs.BOM_UTF32_LE: "utf-32", codecs.BOM_UTF32_BE: "utf-32", codecs.BOM_UTF16_LE: "utf-16",
              codecs.BOM_UTF16_BE: "utf-16"}  # fmt: skip


class ConversionError(Exception):
    """A file that yields no usable text, and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _is_skipped(name: str) -> bool:
    """Hidden files and folders, and Word's lock files ("~$report.docx") that exist while a document is open."""
    return name.startswith((".", "~$"))


def discover(paths: Iterable[Path], *, exclude: Iterable[Path] = ()) -> list[Path]:
    """The files to index under `paths`, absolute and sorted.

    Folders are walked recursively for supported extensions, skipping hidden entries and the `exclude`d
    folders (the store's, when it lies inside a root). A file named directly is always taken, so an
    unsupported one is reported by `convert` instead of silently ignored.
    """
    excluded = {os.path.abspath(path) for path in exclude}
    found: set[str] = set()
    for root in map(os.path.abspath, paths):
        if os.path.isfile(root):
            found.add(root)
        elif os.path.isdir(root):
            for folder, subfolders, names in os.walk(root):
                subfolders[:] = [
                    sub for sub in subfolders if not _is_skipped(sub) and os.path.join(folder, sub) not in excluded
                ]
                found.update(
                    os.path.join(folder, name)
                    for name in names
                    if not _is_skipped(name) and Path(name).suffix.lower() in FILE_TYPES
                )
        else:
            raise FileNotFoundError(f"no such file or folder: {root}")
    return sorted(map(Path, found))


def detect_encoding(data: bytes, path: Path | str) -> str:
    """The encoding of plain text, so legacy files are decoded rather than dropped.

    UTF-8 (with or without BOM) and BOM-marked UTF-16/32 are taken as such. Otherwise charset-normalizer
    detects the encoding, and so the script: Cyrillic, Greek, CJK, ... text keeps its guess. Latin-script
    text gets Windows-1252 (Latin-1's superset) whenever its bytes fit: the single-byte Latin encodings
    differ only in some accented letters, which charset-normalizer tells apart poorly on short texts
    (it read Spanish and short French in Latin-1 as cp1250, cp775 or cp1257, i.e. with the wrong
    accents), and legacy files of an English corpus are overwhelmingly cp1252/Latin-1. Central European
    files may then lose some diacritics.
    """
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for bom, encoding in _WIDE_BOMS.items():
        if data.startswith(bom):
            return encoding
    if b"\x00" in data:
        raise ConversionError(path, "binary content (NUL bytes), not text")
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise ConversionError(path, "binary content: no text encoding fits")
    letters = [char for char in str(best) if not char.isascii() and char.isalpha()]
    latin = sum(unicodedata.name(char, "").startswith("LATIN") for char in letters)
    if latin * 2 >= len(letters):
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            pass
    return best.encoding


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
# Markdown tables keep cells apart with " | ", so a fact in a table reads as words to the splitter and reader.
_DOCX = DOCXToDocument(table_format="markdown")
_HTML = HTMLToDocument()
_MARKDOWN = MarkdownToDocument(progress_bar=False, extract_frontmatter=True)
_TEXT = TextFileToDocument()
_CONVERTERS = {"pdf": _pdf, "docx": _docx, "html": _html, "md": _markdown, "txt": _text}


def convert(path: Path) -> list[Document]:
    """The file's text as Documents (one per file) with file meta; raises ConversionError for a bad file."""
    path = Path(os.path.abspath(path))
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        raise ConversionError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")
    data = path.read_bytes()
    if not data:
        raise ConversionError(path, "empty file")
    text, title, extra = _CONVERTERS[file_type](data, path)
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
