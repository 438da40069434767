"""The encoding of a plain-text file (TXT, Markdown), so that legacy files are decoded rather than dropped."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

import charset_normalizer

from corpusqa.indexing.errors import ConversionError

# BOMs that make NUL bytes legitimate: UTF-16 and UTF-32 text (UTF-32 first: its LE BOM starts like UTF-16's).
_WIDE_BOMS = {codecs.BOM_UTF32_LE: "utf-32", codecs.BOM_UTF32_BE: "utf-32", codecs.BOM_UTF16_LE: "utf-16",
              codecs.BOM_UTF16_BE: "utf-16"}  # fmt: skip
#: Control characters that text holds: tab, line feed, vertical tab, form feed (page breaks), carriage return.
_TEXT_CONTROLS = set("\t\n\v\f\r")
#: UTF-16 without a BOM: in text of Latin, Greek, Cyrillic... script, one byte of each pair is NUL for ASCII
#: (spaces, digits, punctuation at least), at least this share of them; the other byte almost never.
_UTF16_NUL_SHARE, _UTF16_OTHER_NUL_SHARE = 0.1, 0.01


def detect_encoding(data: bytes, path: Path | str) -> str:
    """The encoding of plain text, or ConversionError for binary content.

    UTF-8 (with or without BOM) and BOM-marked UTF-16/32 are taken as such, and UTF-16 without a BOM is
    told by its pattern of NUL bytes (Windows' "Unicode" files written by programs that omit the BOM). Otherwise
    charset-normalizer detects the encoding, and so the script: Cyrillic, Greek, CJK, ... text keeps its guess.
    Latin-script text gets Windows-1252 (Latin-1's superset) whenever its bytes fit: the single-byte Latin
    encodings differ only in some accented letters, which charset-normalizer tells apart poorly on short texts
    (it read Spanish and short French in Latin-1 as cp1250, cp775 or cp1257, i.e. with the wrong accents), and
    legacy files of an English corpus are overwhelmingly cp1252/Latin-1. Central European files may then lose
    some diacritics. Where charset-normalizer finds no encoding at all (it gives up on text dense in symbols,
    such as a Latin-1 parts list of ``±``, ``°``, ``½``, ``§``), Windows-1252 is taken if it decodes the bytes
    to text: no control characters but tabs, line and page breaks.
    """
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for bom, encoding in _WIDE_BOMS.items():
        if data.startswith(bom):
            return encoding
    if b"\x00" in data:
        encoding = _utf16_without_bom(data)
        if encoding is None:
            raise ConversionError(path, "binary content (NUL bytes), not text")
        return encoding
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        return _legacy_fallback(data, path)
    letters = [char for char in str(best) if not char.isascii() and char.isalpha()]
    latin = sum(unicodedata.name(char, "").startswith("LATIN") for char in letters)
    if latin * 2 >= len(letters):
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            pass
    return best.encoding


def is_text(text: str) -> bool:
    """Whether ``text`` holds no control characters but tabs, line and page breaks."""
    return not any(unicodedata.category(char) == "Cc" and char not in _TEXT_CONTROLS for char in set(text))


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" when ``data`` has the NUL pattern of UTF-16 and decodes to text, else None."""
    if len(data) % 2:
        return None
    low, high = data[0::2], data[1::2]
    for nuls, other, encoding in ((high, low, "utf-16-le"), (low, high, "utf-16-be")):
        if nuls.count(0) >= _UTF16_NUL_SHARE * len(nuls) and other.count(0) <= _UTF16_OTHER_NUL_SHARE * len(other):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding if is_text(text) else None
    return None


def _legacy_fallback(data: bytes, path: Path | str) -> str:
    """Windows-1252 when it decodes ``data`` to text; ConversionError otherwise. (Latin-1 adds nothing: the
    bytes Windows-1252 leaves undefined are control characters in Latin-1.)"""
    try:
        if is_text(data.decode("cp1252")):
            return "cp1252"
    except UnicodeDecodeError:
        pass
    raise ConversionError(path, "binary content: no text encoding fits")
