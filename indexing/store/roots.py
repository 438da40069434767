"""The roots a store records (the files and folders given to indexing): only the outermost are kept."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def outermost(paths: Iterable[str | Path], recorded: Iterable[str]) -> list[str]:
    """``paths`` (symlinks resolved) and the ``recorded`` roots, without those lying inside another, sorted."""
    found = {os.path.realpath(path) for path in paths} | set(recorded)
    return sorted(p for p in found if not any(q != p and Path(p).is_relative_to(q) for q in found))
