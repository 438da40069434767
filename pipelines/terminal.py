"""What the CLI prints carries text from documents, file names and questions, which may hold terminal control
sequences (ESC [ ... recolours, moves the cursor, rewrites the window title; a carriage return overprints a
line). Text for people is printed with control characters stripped, but for line breaks and tabs. JSON
keeps every character: ``json.dumps`` escapes C0 controls itself and leaves DEL and the C1 controls raw
(a lone U+009B is a CSI to some terminals), so those are written as ``\\u`` escapes too; the JSON decodes to
the same strings, and every offset in it stays true.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f]")


def stripped(text: str) -> str:
    """``text`` without control characters, line breaks and tabs kept."""
    return _CONTROLS.sub("", text)


def json_escaped(text: str) -> str:
    """JSON text with DEL and the C1 controls written as ``\\u`` escapes (valid only inside JSON strings, where
    ``json.dumps`` puts every character of the data)."""
    return _RAW_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


class _Cleaned:
    """A text stream that writes what it is given through ``clean``; everything else is the stream's own."""

    def __init__(self, stream: TextIO, clean: Any) -> None:
        self._stream, self._clean = stream, clean

    def write(self, text: str) -> int:
        self._stream.write(self._clean(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_stdout(json_output: bool) -> Iterator[None]:
    """Within the block, ``sys.stdout`` strips control characters (``json_output``: escapes what JSON leaves raw)."""
    stream = sys.stdout
    sys.stdout = _Cleaned(stream, json_escaped if json_output else stripped)
    try:
        yield
    finally:
        sys.stdout = stream
