"""Index folders: ``<name>-<generation>/`` in the store's folder, written whole or not at all.

An index is written to a temporary folder, fsynced and renamed into place, so a folder under its final
name is complete; one that still fails to load is derived data all the same, rebuilt by the caller.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol, Self, TypeVar

logger = logging.getLogger(__name__)


class Index(Protocol):
    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Self: ...


_I = TypeVar("_I", bound=Index)


def load(root: Path, name: str, generation: int, kind: type[_I]) -> _I | None:
    """The index saved for ``generation``; None when there is none or it does not load."""
    folder = root / f"{name}-{generation}"
    if not folder.is_dir():
        return None
    try:
        return kind.load(folder)
    except Exception as error:  # derived data: whatever is wrong with it, rebuilding fixes it
        logger.warning("Rebuilding %s: it did not load (%s)", folder, error)
        return None


def save(root: Path, name: str, generation: int, index: Index) -> None:
    """Write ``index`` for ``generation`` and drop older generations. Failing to write is only logged:
    whoever opens the store next rebuilds the index."""
    temporary = root / f".{name}-{generation}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    final = root / f"{name}-{generation}"
    try:
        temporary.mkdir()
        index.save(temporary)
        for file in temporary.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():  # another process wrote this generation first
            shutil.rmtree(temporary)
        else:
            os.replace(temporary, final)
            _fsync_folder(root)
        for stale in [*root.glob(f"{name}-*"), *root.glob(f".{name}-*.tmp")]:
            if int(stale.name.lstrip(".").split(".")[0].split("-")[1]) < generation:
                shutil.rmtree(stale, ignore_errors=True)
    except OSError as error:
        logger.warning("Could not write %s index %d in %s: %s", name, generation, root, error)


def size(root: Path, pattern: str) -> int:
    """Bytes on disk of the files and folders matching ``pattern``."""
    paths = list(root.glob(pattern))
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
