"""Per-file limits of an index run, so that one hostile or broken file fails alone, with a reason, in bounded
time and memory, instead of tying up the run (and the single indexing lock of the search page).

Only regular files are read: a FIFO, a socket or a device is refused before a byte is read (opening a FIFO
to read would wait for a writer forever). A DOCX is a zip: its parts' inflated sizes are checked against
``max_inflated_bytes`` before python-docx inflates any of them. Python's zipfile never inflates a part past
the size its directory declares, so the declared sizes bound the memory, whatever the compressed data holds.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from corpusqa.indexing.errors import ConversionError

MB = 1024 * 1024

_KINDS = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder"}  # fmt: skip


@dataclass(frozen=True)
class FileLimits:
    """What one file may take. A file past a limit fails with a reason naming the limit.

    Defaults that fit real documents, with room: a 1,000-page PDF of text is ~5 MB, a 300-page illustrated
    report as DOCX a few tens of MB inflated, a long book 1-3 million characters (~2,000-5,000 passages of
    150 words). At the limits, converting takes seconds and ~1 GB (python-docx holds a DOCX's parts, lxml
    a parsed copy of its text), and embedding a file's passages minutes on a CPU.

    ``max_file_bytes``: a file's size; ``max_inflated_bytes``: a container's parts together, inflated;
    ``max_characters``: the text a file converts to; ``max_passages``: the passages its text is split into.
    """

    max_file_bytes: int = 256 * MB
    max_inflated_bytes: int = 128 * MB
    max_characters: int = 10_000_000
    max_passages: int = 20_000


def read_file(path: Path, limits: FileLimits) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limits.max_file_bytes``; ConversionError otherwise."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens without a writer
    except OSError as error:
        raise ConversionError(path, f"cannot be read ({error.strerror})") from error
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS.items() if test(mode)), "a special file")
            raise ConversionError(path, f"not a regular file: {kind}")
        if os.fstat(descriptor).st_size > limits.max_file_bytes:
            raise ConversionError(path, f"larger than the limit of {_mb(limits.max_file_bytes)}")
        data = handle.read(limits.max_file_bytes + 1)  # it may have grown since
    if len(data) > limits.max_file_bytes:
        raise ConversionError(path, f"larger than the limit of {_mb(limits.max_file_bytes)}")
    return data


def check_inflated(data: bytes, path: Path, limits: FileLimits) -> None:
    """Refuse a zip container (DOCX) whose parts inflate past ``limits.max_inflated_bytes``; a file that is not
    a readable zip is left to its converter to report."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(part.file_size for part in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    if inflated > limits.max_inflated_bytes:
        raise ConversionError(
            path, f"inflates to {_mb(inflated)}, past the limit of {_mb(limits.max_inflated_bytes)} (a zip bomb?)"
        )


def check_characters(text: str, path: Path, limits: FileLimits) -> None:
    if len(text) > limits.max_characters:
        raise ConversionError(path, f"{len(text):,} characters of text, past the limit of {limits.max_characters:,}")


def check_passages(count: int, path: Path, limits: FileLimits) -> None:
    if count > limits.max_passages:
        raise ConversionError(path, f"{count:,} passages, past the limit of {limits.max_passages:,}")


def _mb(size: int) -> str:
    return f"{size / MB:,.1f} MB"
