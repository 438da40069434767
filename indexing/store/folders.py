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


def newest(root: Path, name: str, at_most: int, kind: type[_I]) -> tuple[int, _I] | None:
    """The newest index saved for a generation up to ``at_most``, with that generation; None when there
    is none or it does not load."""
    generations = sorted((g for g in saved_generations(root, name) if g <= at_most), reverse=True)
    if not generations:
        return None
    folder = root / f"{name}-{generations[0]}"
    try:
        return generations[0], kind.load(folder)
    except Exception as error:  # derived data: whatever is wrong with it, rebuilding fixes it
        logger.warning("Rebuilding %s: it did not load (%s)", folder, error)
        return None


def saved_generations(root: Path, name: str) -> list[int]:
    """Generations of the folders saved under their final name (see ``save``)."""
    return [int(folder.name.split("-")[1]) for folder in root.glob(f"{name}-*") if folder.name.split("-")[1].isdigit()]


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
