"""Index folders: ``<name>-<generation>/`` in the store's folder, written whole or not at all.

An index is written to a temporary folder with its manifest (see ``manifest``), fsynced and renamed into
place, so a folder under its final name is complete. One that still cannot be trusted (damaged, or built
for another database) is derived data all the same: the caller rebuilds the index, and saving it replaces
the folder, so the next process loads it instead of rebuilding again.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol, Self, TypeVar

from . import manifest

logger = logging.getLogger(__name__)


class Index(Protocol):
    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Self: ...


_I = TypeVar("_I", bound=Index)


def newest(root: Path, name: str, at_most: int, kind: type[_I], store_id: str) -> tuple[int, _I] | None:
    """The newest index saved for a generation up to ``at_most``, with that generation; None when there
    is none, or it cannot be trusted for database ``store_id`` or does not load (a warning says why)."""
    generations = sorted((g for g in _generations(root, name) if g <= at_most), reverse=True)
    if not generations:
        return None
    folder = root / f"{name}-{generations[0]}"
    try:
        reason = manifest.problem(folder, store_id, generations[0])
        if reason is None:
            return generations[0], kind.load(folder)
    except Exception as error:  # derived data: whatever is wrong with it, rebuilding fixes it
        reason = f"it did not load ({error})"
    logger.warning("Rebuilding %s: %s", folder, reason)
    return None


def saved_generations(root: Path, name: str, store_id: str) -> list[int]:
    """Generations of the folders saved under their final name (see ``save``) for database ``store_id``."""
    return [g for g in _generations(root, name) if manifest.store_id_of(root / f"{name}-{g}") == store_id]


def saved(root: Path, names: list[str]) -> list[Path]:
    """Every folder under a final name of one of the indexes ``names``, whatever database it was built for."""
    return sorted(root / f"{name}-{g}" for name in names for g in _generations(root, name))


def save(root: Path, name: str, generation: int, index: Index, store_id: str) -> None:
    """Write ``index`` for ``generation`` of database ``store_id``, replacing a folder of that generation
    that cannot be trusted, and drop older generations and other databases' folders. Failing to write is
    only logged: whoever opens the store next rebuilds the index."""
    temporary = root / f".{name}-{generation}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    final = root / f"{name}-{generation}"
    try:
        temporary.mkdir()
        index.save(temporary)
        manifest.write(temporary, store_id, generation)
        for file in temporary.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists() and manifest.problem(final, store_id, generation) is None:
            shutil.rmtree(temporary)  # another process wrote this generation first
        else:
            if final.exists():
                discard(final)
            _move_into_place(temporary, final)
            _fsync_folder(root)
        for stale in [*root.glob(f"{name}-*"), *root.glob(f".{name}-*.tmp")]:
            found = int(stale.name.lstrip(".").split(".")[0].split("-")[1])
            if found < generation or (found > generation and not stale.name.startswith(".")
                                      and manifest.store_id_of(stale) != store_id):  # fmt: skip
                shutil.rmtree(stale, ignore_errors=True)
    except OSError as error:
        logger.warning("Could not write %s index %d in %s: %s", name, generation, root, error)


def discard(folder: Path) -> None:
    """Remove an index folder: renamed out of its final name first, so no process loads it half deleted."""
    doomed = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.replace(folder, doomed)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(doomed, ignore_errors=True)


def size(root: Path, pattern: str) -> int:
    """Bytes on disk of the files and folders matching ``pattern``."""
    paths = list(root.glob(pattern))
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def _generations(root: Path, name: str) -> list[int]:
    """Generations of the folders under a final name ``<name>-<generation>``."""
    return [int(folder.name.split("-")[1]) for folder in root.glob(f"{name}-*") if folder.name.split("-")[1].isdigit()]


def _move_into_place(temporary: Path, final: Path) -> None:
    """Rename ``temporary`` to ``final``; when another process got there first, keep its folder."""
    try:
        os.replace(temporary, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(temporary, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
