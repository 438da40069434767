"""The embedded document store: a folder on disk, no server.

SQLite (WAL) holds everything: passages (id, content, meta as JSON, embedding as a float32 blob), the
per-file records of incremental indexing, a ``generation`` counter bumped in the transaction of every
change, and a log of the rows each generation removed. The BM25 index and the dense index are derived
data, kept in memory and saved as ``bm25-<generation>/`` and ``dense-<generation>/`` (written to a
temporary folder, fsynced, renamed into place). After a commit each index catches up with SQLite:
the rows above the last one it has seen are added, the logged removals applied, in place, so a commit
costs what it changed, not the corpus's size. An index is saved once it lags its folder by
``_REPLAY_LIMIT`` passages (or is rebuilt); a process that opens the store loads the newest folder and
replays the commits since. Each folder's manifest names the database it was built from (the store id
kept in SQLite, and the generation) and checksums its files; a folder that does not match (damaged,
power loss, or left from a deleted or replaced database), or an index that cannot absorb a change, is
rebuilt from SQLite and the folder replaced, so a process killed at any moment leaves the old or the
new content, never a mix. See ``database`` for the folders refused as stores.

Filters (Haystack 3 syntax, plus ``prefix``, see ``filters``) are evaluated in Python with Haystack's
own matcher over ids and meta held in memory, loaded once per generation; results are cached per
filter until the next change.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from haystack import default_from_dict, default_to_dict
from haystack.dataclasses import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from . import filters as _filters
from . import folders
from .contract import FileRecord, Finding, StoreStats
from .database import DATABASE as _DATABASE
from .database import connect, explained
from .dense import DenseIndex
from .keyword import KeywordIndex
from .roots import outermost

logger = logging.getLogger(__name__)

_BULK_LOCK = "bulk.lock"
_FILTER_CACHE_SIZE = 64
#: Passages (added or removed) an index may lag its saved folder by. Saving rewrites the folder (at a
#: million passages ~0.5 GB of BM25 and ~1.8 GB of HNSW); a process that opens the store replays the
#: lag (tokenizing for BM25's delta, vectors beside the graph): 4,900 passages at a million took 0.4 s
#: on top of the 2.4 s of loading (benchmarks/store_scaling.py's store, 2-core Xeon).
_REPLAY_LIMIT = 5_000


@dataclass
class _Transaction:
    """The write transaction in progress: the generation it commits, and whether it changed anything."""

    generation: int
    touched: bool = False


@dataclass
class _Held:
    """An index in memory: the generation it reflects, and the passages changed since its saved folder."""

    generation: int
    index: KeywordIndex | DenseIndex
    unsaved: int = 0


class EmbeddedDocumentStore:
    """Passages with metadata, BM25 and dense retrieval, in a folder; a Haystack 3 ``DocumentStore``.

    ``embedding_dim`` is checked against written embeddings; None takes it from the first one. Safe to
    share between threads; processes may share the folder (each sees the others' commits), one writer
    at a time being the intended use.
    """

    #: Filters are evaluated on whole Documents (``filters.matches``): ``content`` compares exactly.
    content_filters = True

    def __init__(self, path: str | Path, embedding_dim: int | None = None):
        self.path = Path(path)
        self.embedding_dim = embedding_dim
        self._lock = threading.RLock()
        self._db = connect(self.path, lambda: folders.saved(self.path, list(_INDEXES)))
        self.store_id = self._identity()
        stored = self._state("embedding_dim")
        if embedding_dim is not None and stored is not None and stored != embedding_dim:
            raise ValueError(f"{self.path} holds {stored}-d embeddings, not {embedding_dim}-d")
        self._indexes: dict[str, _Held] = {}
        self._views: tuple[int, np.ndarray, list[Document]] | None = None
        self._filtered: tuple[int, dict[str, np.ndarray]] = (-1, {})
        self._bulk = False
        self._stats: tuple[int, dict[str, Any]] | None = None  # (generation, stats())
        self._files: tuple[int, list[FileRecord]] | None = None  # (generation, files())

    def _identity(self) -> str:
        """The store id, made anew when index folders of this id are newer than the database (restored
        from an older backup): they hold passages it may never have had. Folders are listed before the
        generation is read, so another process committing and saving in between cannot look like that."""
        store_id = self._state("store_id")
        saved = max((g for name in _INDEXES for g in folders.saved_generations(self.path, name, store_id)), default=0)
        if saved > self._generation():
            logger.warning("%s: index folders are newer than the database (restored from a backup?): rebuilding them",
                           self.path)
            self._db.execute("UPDATE state SET value = lower(hex(randomblob(16))) WHERE key = 'store_id' AND value = ?",
                             (store_id,))
            store_id = self._state("store_id")
        return store_id

    # -- Haystack DocumentStore protocol ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, path=str(self.path), embedding_dim=self.embedding_dim)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddedDocumentStore:
        return default_from_dict(cls, data)

    def count_documents(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Matching documents in the order they were written."""
        with self._lock:
            if not filters:
                return [d for _, d in self._all_documents()]
            return [d for _, d in self._fetch(self._matching_rows(filters).tolist())]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write in one transaction; NONE means FAIL: nothing is written if any id exists already."""
        documents = _checked(documents)
        ids = [document.id for document in documents]

        def write(transaction: _Transaction) -> int:
            existing = self._rows_by_id(ids)
            if policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
                duplicate = next((i for i in ids if i in existing), None) or _first_repeat(ids)
                if duplicate is not None:
                    raise DuplicateDocumentError(f"ID '{duplicate}' already exists.")
                return self._insert(documents, transaction)
            if policy == DuplicatePolicy.SKIP:
                seen, new = set(existing), []
                for document in documents:
                    if document.id not in seen:
                        seen.add(document.id)
                        new.append(document)
                return self._insert(new, transaction)
            return self._insert(documents, transaction)  # OVERWRITE

        return self._write(write)

    def delete_documents(self, document_ids: list[str]) -> None:
        def delete(transaction: _Transaction) -> None:
            self._delete_rows(list(self._rows_by_id(document_ids).values()), transaction)

        self._write(delete)

    # -- retrieval --------------------------------------------------------------------------------

    def bm25(self, query: str, top_k: int, filters: dict[str, Any] | None = None) -> list[Document]:
        """The ``top_k`` passages best matching ``query`` by BM25 (``score``), best first; only passages
        sharing a token with the query are returned."""
        with self._lock:
            if top_k < 1:
                return []
            allowed = self._matching_rows(filters) if filters else None
            index: KeywordIndex = self._index("bm25")
            return self._scored(index.search(query, top_k, allowed))

    def dense(
        self, embedding: Sequence[float] | np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Document]:
        """The ``top_k`` passages nearest to ``embedding`` (``score``: cosine similarity), best first."""
        with self._lock:
            allowed = self._matching_rows(filters) if filters else None
            index: DenseIndex = self._index("dense")
            if index.dim is None:
                raise ValueError(
                    f"The store in {self.path} has no embeddings: re-index it with embeddings for dense retrieval"
                )
            query = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
            if query.shape[1] != index.dim:
                raise ValueError(f"The query embedding has {query.shape[1]} dimensions, the store's {index.dim}")
            return self._scored(index.search(query, top_k, allowed))

    # -- files ----------------------------------------------------------------------------------------

    def file_record(self, path: str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path,)).fetchone()
            return FileRecord(*row) if row else None

    def files(self) -> list[FileRecord]:
        """Every file record, by path; read once per generation (a UI asks on every click)."""
        with self._lock:
            generation = self._generation()
            if self._files is None or self._files[0] != generation:
                found = self._db.execute(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY path")
                self._files = (generation, [FileRecord(*row) for row in found])
            return list(self._files[1])

    def replace_files(self, batch: list[tuple[FileRecord, list[Document]]]) -> None:
        """In one transaction, per file: drop the passages of ``record.path`` (by ``meta["file_path"]``),
        write the new ones (overwriting equal ids), and store the record. Every passage must carry its
        file's ``meta["file_path"]``, or a later replace would leave it behind."""
        batch = [(record, _checked(documents)) for record, documents in batch]
        if not batch:
            return
        for record, documents in batch:
            stray = next((d for d in documents if d.meta.get("file_path") != record.path), None)
            if stray is not None:
                found = stray.meta.get("file_path")
                raise ValueError(f"Passage {stray.id} has file_path {found!r}, not {record.path!r}")

        def replace_all(transaction: _Transaction) -> None:
            now = time.time()
            for record, documents in batch:
                self._delete_rows(self._rows_of_files([record.path]), transaction)
                self._insert(documents, transaction)
                self._db.execute(
                    f"INSERT OR REPLACE INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (record.path, record.content_hash, record.size, record.mtime, len({d.id for d in documents}), now),
                )
            transaction.touched = True

        self._write(replace_all)

    def remove_files(self, paths: list[str]) -> int:
        """Drop the files' passages and records in one transaction; returns the passages removed."""

        def remove(transaction: _Transaction) -> int:
            rows = self._rows_of_files(paths)
            self._delete_rows(rows, transaction)
            self._db.execute("DELETE FROM files WHERE path IN (SELECT value FROM json_each(?))", (json.dumps(paths),))
            transaction.touched |= self._db.execute("SELECT changes()").fetchone()[0] > 0
            return len(rows)

        return self._write(remove)

    def record_roots(self, paths: Iterable[str | Path]) -> None:
        """Remember the files and folders given to indexing, symlinks resolved, so that whoever serves the
        original files (the search UI) serves only what lies under them. A root inside a recorded one adds
        nothing; one that holds recorded roots replaces them."""
        with self._lock, self._immediate():
            kept = outermost(paths, self.roots())
            self._db.execute("DELETE FROM roots")
            self._db.executemany("INSERT INTO roots (path) VALUES (?)", [(p,) for p in kept])

    def roots(self) -> list[str]:
        """The recorded roots (``record_roots``), sorted."""
        with self._lock:
            return [path for (path,) in self._db.execute("SELECT path FROM roots ORDER BY path")]

    def passages(self, batch_size: int = 500) -> Iterator[list[Document]]:
        """Every passage, grouped by file: those without a ``file_path`` first, in the order written, then
        by ``file_path`` and the order written (the column is indexed); pages by key, so each batch costs
        the same however far the iteration has gone."""
        unfiled = f"SELECT {_COLUMNS} FROM documents WHERE file_path IS NULL AND row > ? ORDER BY row LIMIT ?"
        filed = (f"SELECT {_COLUMNS}, file_path FROM documents WHERE file_path > ? OR (file_path = ? AND row > ?) "
                 "ORDER BY file_path, row LIMIT ?")  # fmt: skip
        last = 0
        while batch := self._read(unfiled, (last, batch_size)):
            last = batch[-1][0]
            yield [document for _, document in self._documents(batch)]
        path, last = "", 0
        while batch := self._read(filed, (path, path, last, batch_size)):
            path, last = batch[-1][-1], batch[-1][0]
            yield [document for _, document in self._documents([row[:-1] for row in batch])]

    def _read(self, query: str, parameters: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(query, parameters).fetchall()

    @property
    def folder(self) -> Path:
        """The store's folder (indexing never reads it)."""
        return self.path

    def stats(self) -> StoreStats:
        """What a UI shows about the store: passages; documents (those the passages were split from:
        distinct ``source_id``); files; files and passages per file type; when a file was last indexed
        (Unix time); per index the passages it covers; the dense index kind ("flat", "hnsw", or None
        without embeddings); bytes on disk. The counts are read once per generation (a UI asks on every
        click, and counting distinct sources reads every row)."""
        with self._lock:
            keyword, dense = self._index("bm25"), self._index("dense")
            if self._stats is None or self._stats[0] != self._generation():
                with self._snapshot() as generation:
                    self._stats = (generation, self._counts())
            return {
                **copy.deepcopy(self._stats[1]),
                "bm25_passages": keyword.size,
                "dense_passages": dense.size,
                "dense_index": dense.kind,
                "disk_bytes": {
                    "sqlite": folders.size(self.path, _DATABASE + "*"),
                    "bm25": folders.size(self.path, "bm25-*"),
                    "dense": folders.size(self.path, "dense-*"),
                },
            }

    def _counts(self) -> dict[str, Any]:
        db = self._db
        by_type = db.execute(
            "SELECT json_extract(meta, '$.file_type') AS t, COUNT(DISTINCT file_path), COUNT(*) "
            "FROM documents GROUP BY t ORDER BY t"
        ).fetchall()
        sources = "SELECT COUNT(DISTINCT COALESCE(json_extract(meta, '$.source_id'), id)) FROM documents"
        return {
            "passages": self.count_documents(),
            "documents": db.execute(sources).fetchone()[0],
            "files": db.execute("SELECT COUNT(*) FROM files").fetchone()[0],
            "file_types": {t: {"files": files, "passages": passages} for t, files, passages in by_type},
            "last_indexed_at": db.execute("SELECT MAX(indexed_at) FROM files").fetchone()[0],
            "embedding_dim": self._state("embedding_dim"),
        }

    def has_embeddings(self) -> bool:
        """Whether passages were written with embeddings (dense retrieval needs them), without loading an index."""
        with self._lock:
            return self._state("embedding_dim") is not None

    def verify(self) -> None:
        """Raise ``StoreError`` when SQLite finds the database damaged (``PRAGMA quick_check`` reads every
        page: 0.6 s for an 830 MB database, cached; an index run does this first, so it never adds to a
        damaged database, nor skips files whose passages are no longer readable)."""
        with self._lock:
            try:
                found = [line for (line,) in self._db.execute("PRAGMA quick_check")]
            except sqlite3.Error as error:
                raise explained(self.path, error) from error
            if found != ["ok"]:
                raise explained(self.path, sqlite3.DatabaseError(f"quick_check: {found[0]}"), damaged=True)

    def check(self) -> list[Finding]:
        """``maintenance.check_store`` on this store's folder (which reads the folder without opening it)."""
        from .maintenance import check_store  # it opens stores of this module: imported when used

        return check_store(self.path)

    def repair(self) -> list[str]:
        """Rebuild both indexes from the database's rows (see ``maintenance.repair_store``)."""
        covered = self.rebuild_indexes()
        return [f"rebuilt the {name} index from the database's rows: {count} passages" for name, count in covered.items()]

    def rebuild_indexes(self) -> dict[str, int]:
        """Discard every index folder and rebuild both indexes from SQLite's rows; returns the passages each
        index covers."""
        with self._lock:
            for folder in folders.saved(self.path, list(_INDEXES)):
                folders.discard(folder)
            self._indexes = {name: self._rebuilt(name) for name in _INDEXES}
            return {name: held.index.size for name, held in self._indexes.items()}

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._indexes, self._views, self._stats, self._files = {}, None, None, None
            self._filtered = (-1, {})

    def __enter__(self) -> EmbeddedDocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------

    @contextmanager
    def bulk(self) -> Iterator[EmbeddedDocumentStore]:
        """Commit rows as usual, but bring the indexes up to date once, on leaving.

        Catching up after every commit of a long index run would rebuild BM25 whenever its delta passes
        its share (at every commit while a corpus grows from little) and rewrite both index folders every
        ``_REPLAY_LIMIT`` passages: quadratic over the run. Inside ``bulk`` this store's own reads still
        catch up. Other processes (a search UI) catch up on small changes, but serve the
        indexes they have while the run is far ahead of them, rather than rebuild them while it writes.
        A crash loses nothing: the indexes replay or rebuild from the rows. Holds ``bulk.lock``
        (``flock``, released by the system when the process dies) for the others to see.
        """
        if self._bulk:
            yield self
            return
        lock = os.open(self.path / _BULK_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another run is in bulk too: the lock already says so
            pass
        self._bulk = True
        try:
            yield self
        finally:
            self._bulk = False
            os.close(lock)
            with self._lock:
                self._refresh()

    def _write(self, apply: Callable[[_Transaction], Any]) -> Any:
        """Run ``apply`` in one write transaction that also bumps the generation, then update the indexes."""
        with self._lock:
            with self._immediate():
                transaction = _Transaction(self._generation() + 1)
                result = apply(transaction)
                if transaction.touched:
                    self._forget_replayed_removals()
                    self._db.execute("UPDATE state SET value = ? WHERE key = 'generation'", (transaction.generation,))
            if transaction.touched and not self._bulk:
                self._refresh()
            return result

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _forget_replayed_removals(self) -> None:
        """Drop the removals that every saved index already reflects: only a catch-up from an older
        generation would need them, and ``log_start`` tells it to load a newer folder instead."""
        start = min(max(folders.saved_generations(self.path, name, self.store_id), default=0) for name in _INDEXES)
        if start > self._state("log_start"):
            self._db.execute("DELETE FROM removed WHERE generation <= ?", (start,))
            self._db.execute("UPDATE state SET value = ? WHERE key = 'log_start'", (start,))

    def _insert(self, documents: list[Document], transaction: _Transaction) -> int:
        """Insert, replacing rows with the same ids (the last of repeated ids wins); returns the count."""
        documents = list({document.id: document for document in documents}.values())
        if not documents:
            return 0
        self._delete_rows(list(self._rows_by_id([d.id for d in documents]).values()), transaction)
        embeddings = self._embeddings(documents)
        start = self._last_row() + 1
        rows = range(start, start + len(documents))
        self._db.executemany(
            "INSERT INTO documents (row, id, content, meta, embedding, file_path) VALUES (?, ?, ?, ?, ?, ?)",
            [(row, d.id, d.content, _meta_json(d), None if e is None else e.tobytes(), d.meta.get("file_path"))
             for row, d, e in zip(rows, documents, embeddings)],
        )
        transaction.touched = True
        return len(documents)

    def _embeddings(self, documents: list[Document]) -> list[np.ndarray | None]:
        """float32 embeddings, checked against the store's dimension (set by the first one written)."""
        vectors = [None if d.embedding is None else np.asarray(d.embedding, dtype=np.float32) for d in documents]
        stored = self._state("embedding_dim")
        dim = stored or self.embedding_dim or next((len(v) for v in vectors if v is not None and v.ndim == 1), None)
        for document, vector in zip(documents, vectors):
            if vector is not None and vector.shape != (dim,):
                raise ValueError(f"Document {document.id} has an embedding of shape {vector.shape}, not ({dim},)")
        if stored is None and dim is not None and any(v is not None for v in vectors):
            self._db.execute("INSERT INTO state VALUES ('embedding_dim', ?)", (dim,))
        return vectors

    def _delete_rows(self, rows: list[int], transaction: _Transaction) -> None:
        if rows:
            listed = json.dumps(rows)
            self._db.execute("DELETE FROM documents WHERE row IN (SELECT value FROM json_each(?))", (listed,))
            self._db.execute("INSERT OR REPLACE INTO removed SELECT value, ? FROM json_each(?)",
                             (transaction.generation, listed))
            transaction.touched = True

    def _rows_by_id(self, ids: list[str]) -> dict[str, int]:
        query = "SELECT id, row FROM documents WHERE id IN (SELECT value FROM json_each(?))"
        return dict(self._db.execute(query, (json.dumps(ids),)))

    def _rows_of_files(self, paths: list[str]) -> list[int]:
        query = "SELECT row FROM documents WHERE file_path IN (SELECT value FROM json_each(?))"
        return [row for (row,) in self._db.execute(query, (json.dumps(paths),))]

    # -- indexes ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        for name in _INDEXES:
            self._index(name)

    def _index(self, name: str) -> Any:
        """The named index at SQLite's current generation, caught up in memory (see ``_current``)."""
        generation = self._generation()
        held = self._indexes.get(name)
        if held is None or held.generation != generation:
            held = self._indexes[name] = self._current(name, held, generation)
        return held.index

    def _current(self, name: str, held: _Held | None, generation: int) -> _Held:
        """``held`` (else the newest saved folder) caught up to ``generation``; rebuilt from SQLite when
        neither can be. Behind another process's bulk run by more than ``_REPLAY_LIMIT`` passages,
        ``held`` as it is (see ``bulk``)."""
        if held is None or held.generation < self._state("log_start"):
            found = folders.newest(self.path, name, generation, _INDEXES[name], self.store_id)
            held = None if found is None else _Held(*found)
        if held is not None and held.generation != generation:
            if self._behind_bulk_elsewhere(held):
                return held
            held = self._caught_up(name, held)
        return held if held is not None else self._rebuilt(name)

    def _caught_up(self, name: str, held: _Held) -> _Held | None:
        """``held`` with the commits since its generation applied in place (removed rows from the log,
        rows above ``through``), saved when it lags its folder by more than ``_REPLAY_LIMIT``; None when
        the log no longer reaches back to it or the index cannot absorb the change."""
        index, column = held.index, _INDEXED_COLUMN[name]
        new = f"FROM documents WHERE row > ? AND {column} IS NOT NULL"
        with self._snapshot() as generation:
            if held.generation < self._state("log_start"):
                return None
            query = "SELECT row FROM removed WHERE generation > ? ORDER BY row"
            removed = np.array([row for (row,) in self._db.execute(query, (held.generation,))], dtype=np.int64)
            if not index.absorbs(removed, self._db.execute(f"SELECT COUNT(*) {new}", (index.through,)).fetchone()[0]):
                return None
            found = self._db.execute(f"SELECT row, {column} {new} ORDER BY row", (index.through,)).fetchall()
            through = self._last_row()
        rows = np.array([row for row, _ in found], dtype=np.int64)
        index.update(removed, rows, [text for _, text in found] if name == "bm25" else self._vectors(found))
        index.through = through
        held = _Held(generation, index, held.unsaved + len(removed) + len(found))
        if held.unsaved > _REPLAY_LIMIT:
            folders.save(self.path, name, generation, index, self.store_id)
            held.unsaved = 0
        return held

    def _behind_bulk_elsewhere(self, held: _Held) -> bool:
        """Whether another store (another process, mostly) holds ``bulk.lock`` and has written more than
        ``_REPLAY_LIMIT`` passages that ``held`` has not seen."""
        if self._bulk:
            return False
        try:
            lock = os.open(self.path / _BULK_LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            backlog = "SELECT COUNT(*) FROM documents WHERE row > ?"
            return self._db.execute(backlog, (held.index.through,)).fetchone()[0] > _REPLAY_LIMIT
        finally:
            os.close(lock)

    def _rebuilt(self, name: str) -> _Held:
        """The named index built from SQLite, and saved."""
        column = _INDEXED_COLUMN[name]
        with self._snapshot() as generation:
            found = self._db.execute(f"SELECT row, {column} FROM documents WHERE {column} IS NOT NULL ORDER BY row").fetchall()
            through = self._last_row()
        rows = np.array([row for row, _ in found], dtype=np.int64)
        if name == "bm25":
            index = KeywordIndex.build(rows, [content for _, content in found], through)
        else:
            index = DenseIndex.build(rows, self._vectors(found), through)
        folders.save(self.path, name, generation, index, self.store_id)
        return _Held(generation, index)

    def _vectors(self, found: list[tuple[int, bytes]]) -> np.ndarray:
        dim = self._state("embedding_dim") or 0
        return np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32).reshape(len(found), dim)

    def _last_row(self) -> int:
        """The highest row ever written (rows are never reused)."""
        found = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'documents'").fetchone()
        return found[0] if found else 0

    # -- reading ------------------------------------------------------------------------------------

    def _matching_rows(self, filters: dict[str, Any]) -> np.ndarray:
        """Sorted rows of the documents passing ``filters``, cached until the next change."""
        _filters.validate(filters)
        generation = self._generation()
        key = json.dumps(filters, sort_keys=True, default=str)
        if self._filtered[0] != generation:
            self._filtered = (generation, {})
        cache = self._filtered[1]
        if key not in cache:
            if _filters.needs_body(filters):
                found = self._all_documents()
                rows, documents = np.array([row for row, _ in found], dtype=np.int64), [d for _, d in found]
            else:
                rows, documents = self._meta_views(generation)
            if len(cache) >= _FILTER_CACHE_SIZE:
                cache.clear()
            passing = (_filters.matches(filters, document) for document in documents)
            cache[key] = rows[np.fromiter(passing, dtype=bool, count=len(documents))]
        return cache[key]

    def _meta_views(self, generation: int) -> tuple[np.ndarray, list[Document]]:
        """Every row with a Document of its id and meta only: what filters on meta need."""
        if self._views is None or self._views[0] != generation:
            found = self._db.execute("SELECT row, id, meta FROM documents ORDER BY row").fetchall()
            rows = np.array([row for row, _, _ in found], dtype=np.int64)
            self._views = (generation, rows, [Document(id=i, meta=json.loads(meta)) for _, i, meta in found])
        return self._views[1], self._views[2]

    def _scored(self, hits: list[tuple[int, float]]) -> list[Document]:
        """Documents for (row, score) hits, in hit order; rows deleted since the index was read drop out."""
        found = dict(self._fetch([row for row, _ in hits]))
        return [replace(found[row], score=score) for row, score in hits if row in found]

    def _all_documents(self) -> list[tuple[int, Document]]:
        return self._documents(self._db.execute(f"SELECT {_COLUMNS} FROM documents ORDER BY row"))

    def _fetch(self, rows: list[int]) -> list[tuple[int, Document]]:
        query = f"SELECT {_COLUMNS} FROM documents WHERE row IN (SELECT value FROM json_each(?)) ORDER BY row"
        return self._documents(self._db.execute(query, (json.dumps(rows),)))

    @staticmethod
    def _documents(cursor: sqlite3.Cursor) -> list[tuple[int, Document]]:
        return [
            (row, Document(id=id_, content=content, meta=json.loads(meta), embedding=_vector(blob)))
            for row, id_, content, meta, blob in cursor
        ]

    def _generation(self) -> int:
        return self._state("generation")

    def _state(self, key: str) -> Any:
        found = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    @contextmanager
    def _snapshot(self) -> Iterator[int]:
        """A read transaction, yielding its generation: the rows read inside it are that generation's."""
        self._db.execute("BEGIN")
        try:
            yield self._generation()
        finally:
            self._db.execute("COMMIT")


_INDEXES: dict[str, type[KeywordIndex] | type[DenseIndex]] = {"bm25": KeywordIndex, "dense": DenseIndex}
_INDEXED_COLUMN = {"bm25": "content", "dense": "embedding"}
_COLUMNS = "row, id, content, meta, embedding"
_FILE_COLUMNS = "path, content_hash, size, mtime, passages, indexed_at"


def _checked(documents: Any) -> list[Document]:
    """The Haystack protocol's input check, plus what this store keeps: text, meta and a dense embedding."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
        raise ValueError("Please provide a list of Documents.")
    documents = list(documents)
    for document in documents:
        if not isinstance(document, Document):
            raise ValueError("Please provide a list of Documents.")
        if document.blob is not None or document.sparse_embedding is not None:
            raise ValueError(f"Document {document.id}: the store keeps content, meta and embedding; not a blob "
                             "or a sparse embedding")
    return documents


def _meta_json(document: Document) -> str:
    try:
        return json.dumps(document.meta, ensure_ascii=False)
    except TypeError as error:
        raise ValueError(f"Document {document.id}: meta must be JSON-serialisable ({error})") from error


def _vector(blob: bytes | None) -> list[float] | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).tolist()


def _first_repeat(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None
