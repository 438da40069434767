"""The one error of reading a file for indexing: the file yields no usable text, and the reason says why."""

from __future__ import annotations

from pathlib import Path


class ConversionError(Exception):
    """A file that yields no usable text, and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
