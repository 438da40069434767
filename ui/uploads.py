"""Files analysts upload: checked, saved under ``<folder>/uploads/`` (the store's folder, or the data folder
of a server store) with a safe name, and indexed by the same
``index_paths`` as `corpusqa index`. A file that fails to convert is deleted again, so nothing of it stays:
not in the store, not on disk.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusqa.indexing.convert import FILE_TYPES
from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store.contract import CorpusStore, StoreStats

UPLOADS_FOLDER = "uploads"
MB = 2**20  # as Streamlit counts server.maxUploadSize
#: Extensions the indexer converts, without the dot (what a file picker filters on).
ALLOWED_EXTENSIONS = sorted(suffix.lstrip(".") for suffix in FILE_TYPES)
_UNSAFE = re.compile(r"[^\w\-. ]+")
_MAX_STEM = 100


class UploadRefused(ValueError):
    """A file refused before it reaches the disk, and why."""


@dataclass(frozen=True)
class UploadOutcome:
    """What became of one uploaded file: indexed (``passages``), already there, or refused/failed (``error``)."""

    name: str
    path: Path | None = None
    passages: int = 0
    unchanged: bool = False
    error: str | None = None


def safe_name(name: str) -> str:
    """A name that stays in its folder and in sight: the last component of either kind of path, NFC, with
    characters other than letters, digits, ``-``, ``_``, ``.`` and space replaced, no leading dots, dashes or
    Word's ``~$`` (hidden or lock files, which indexing skips), the stem cut to 100 characters."""
    base = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).lstrip(".-~$ _").rstrip(". ")[:_MAX_STEM].rstrip(". ") or "upload"
    suffix = _UNSAFE.sub("", suffix).lower()
    return f"{stem}.{suffix}" if suffix else stem


def save_upload(folder: Path, name: str, data: bytes, max_bytes: int) -> Path:
    """Write ``data`` into ``folder`` under ``safe_name(name)``, or ``name-2``, ``name-3``… when that is taken
    by other bytes; the same bytes under the same name are the file already there. Never overwrites."""
    safe = Path(safe_name(name))
    suffix = safe.suffix
    if suffix not in FILE_TYPES:
        kind = f"'{suffix}' files" if suffix else "files without an extension"
        raise UploadRefused(f"{kind} cannot be indexed (allowed: {', '.join(ALLOWED_EXTENSIONS)})")
    if not data:
        raise UploadRefused("the file is empty")
    if len(data) > max_bytes:
        raise UploadRefused(f"{len(data) / MB:.1f} MB is over the upload limit of {max_bytes / MB:.0f} MB")
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe.stem
    for number in range(1, 10_000):
        path = folder / (f"{stem}{suffix}" if number == 1 else f"{stem}-{number}{suffix}")
        try:
            with open(path, "xb") as handle:
                handle.write(data)
            return path
        except FileExistsError:
            if path.is_file() and path.read_bytes() == data:
                return path
    raise UploadRefused(f"too many uploads named {stem}{suffix}")


def index_upload(
    store: CorpusStore,
    name: str,
    data: bytes,
    *,
    max_bytes: int,
    embedder: Any = None,
    embed: bool = True,
    folder: Path | None = None,
) -> UploadOutcome:
    """Save one uploaded file in ``folder``'s uploads folder (default: the store's own folder) and index it;
    on failure delete it again.

    The uploads folder is recorded as an indexed root, so its files can be downloaded like any other.
    ``embedder`` (warmed up once by the caller) spares loading a model per file; ``embed=False`` for a store
    indexed without embeddings. A store without a folder of its own (a server) needs ``folder``.
    """
    kept_in = folder if folder is not None else store.folder
    if kept_in is None:
        raise ValueError("uploads need a folder to be kept in: this store has none of its own")
    folder = kept_in / UPLOADS_FOLDER
    try:
        path = save_upload(folder, name, data, max_bytes)
    except UploadRefused as refused:
        return UploadOutcome(name, error=str(refused))
    store.record_roots([folder])
    report = index_paths([path], store, embedder, embed=embed, progress=False)
    if report.failed:
        path.unlink(missing_ok=True)
        return UploadOutcome(name, error=report.failed[0][1])
    return UploadOutcome(name, path, passages=report.passages, unchanged=report.skipped > 0)


def embeds(stats: StoreStats) -> bool:
    """Whether new passages get embeddings: yes, unless the store holds passages indexed without them."""
    return stats["embedding_dim"] is not None or stats["passages"] == 0
