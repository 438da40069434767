"""The store contract: what corpusqa asks of a store, whichever one holds the corpus.

Two protocols, by who needs what:

* ``SearchStore``: Haystack's ``DocumentStore`` (write, filter, count, delete, to_dict/from_dict) plus
  ``bm25`` and ``dense`` search under the same filters. The retrievers of the query pipelines need this.
* ``CorpusStore``: a ``SearchStore`` that also keeps one ``FileRecord`` per indexed file (for incremental
  runs and ``--prune``), the roots given to indexing, and everything the indexer, ``stats``,
  ``store check/repair/copy``, the search page and the HTTP API use.

Filters are Haystack's filter syntax plus one operator, ``prefix`` (a string field starting with a value:
``{"field": "meta.file_path", "operator": "prefix", "value": "/docs/manuals/"}``). Every passage the
indexer writes carries ``meta["file_path"]`` (the file's absolute path) and ``meta["file_type"]``. Filters on
a passage's text (``content``) are a capability a store declares (``SearchStore.content_filters``): a store
without it refuses them (``FilterError``) rather than answer them wrongly.

Implementations: ``corpusqa.indexing.store.embedded.EmbeddedDocumentStore`` (a folder) and
``corpusqa.indexing.store.es.ElasticsearchStore`` (an Elasticsearch index).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np
from haystack.dataclasses import Document
from haystack.document_stores.types import DocumentStore


class StoreError(ValueError):
    """A store that cannot be used as it is; the message names the store and what to do."""


class RefusedFiles(StoreError):
    """Files whose passages the store refused in ``replace_files`` (a server turning documents away one by
    one), each left as it was: its record not written and none of its new passages kept, so it stays "not
    indexed" and the next index run tries it again. The batch's other files were written.

    ``refused``: file path -> why, in one line (naming the passage refused and the store's reason).
    """

    def __init__(self, location: str, refused: dict[str, str]):
        self.refused = dict(refused)
        path, reason = next(iter(self.refused.items()))
        more = len(self.refused) - 1
        super().__init__(f"store {location}: {path}: {reason}" + (f" (and {more:,} more files)" if more else ""))


@dataclass(frozen=True)
class FileRecord:
    """What the store last indexed from one file; ``passages`` and ``indexed_at`` are set by the store.

    ``path``: the file's absolute path (its identity); ``content_hash``: sha256 of its bytes (its version);
    ``size`` in bytes and ``mtime`` as read; ``passages``: how many it was split into; ``indexed_at``: Unix time.
    """

    path: str
    content_hash: str
    size: int
    mtime: float
    passages: int = 0
    indexed_at: float = 0.0


@dataclass(frozen=True)
class Finding:
    """One thing ``CorpusStore.check`` looked at (``subject``) and what it found; ``ok`` False for a problem."""

    subject: str
    ok: bool
    text: str


class FileTypeCounts(TypedDict):
    files: int
    passages: int


class StoreStats(TypedDict):
    """What ``CorpusStore.stats`` returns (`corpusqa stats --json`, ``GET /stats``, the search page).

    ``documents``: distinct ``meta["source_id"]`` (the files or records the passages were split from);
    ``file_types``: per ``meta["file_type"]`` (None for passages without one); ``last_indexed_at``: Unix
    time of the newest file record, None without any; ``embedding_dim``: None while no embedding was
    written; ``dense_index``: the kind of vector index ("flat", "hnsw"...; None without embeddings);
    ``disk_bytes``: bytes on disk by part, as the store names its parts.
    """

    passages: int
    documents: int
    files: int
    file_types: dict[str | None, FileTypeCounts]
    last_indexed_at: float | None
    embedding_dim: int | None
    bm25_passages: int
    dense_passages: int
    dense_index: str | None
    disk_bytes: dict[str, int]


@runtime_checkable
class SearchStore(DocumentStore, Protocol):
    """A Haystack ``DocumentStore`` that ranks its passages by BM25 and by embedding, under filters."""

    #: Whether filters may compare a passage's ``content`` (``==`` compares the whole text exactly). A store
    #: that keeps the text only analysed for BM25 declares False and refuses such filters (``FilterError``).
    content_filters: bool

    def bm25(self, query: str, top_k: int, filters: dict[str, Any] | None = None) -> list[Document]:
        """The ``top_k`` passages best matching ``query`` by BM25 (``score``: higher is better), best first;
        only passages sharing a word with the query are returned. ``filters``: see the module."""
        ...

    def dense(
        self, embedding: Sequence[float] | np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Document]:
        """The ``top_k`` passages nearest to ``embedding`` (``score``: cosine similarity), best first.
        Raises ValueError for a store without embeddings, or a query of another dimension."""
        ...


@runtime_checkable
class CorpusStore(SearchStore, Protocol):
    """A ``SearchStore`` that also knows which files it indexed, and from under which folders."""

    @property
    def folder(self) -> Path | None:
        """The local folder the store keeps its own files in (indexing never reads it); None for a server."""
        ...

    def has_embeddings(self) -> bool:
        """Whether passages were written with embeddings (dense retrieval needs them)."""
        ...

    def stats(self) -> StoreStats:
        """What the store holds (see ``StoreStats``); cheap enough to ask on every click of a page."""
        ...

    def file_record(self, path: str) -> FileRecord | None:
        """The record of the file at ``path``, None when it was never indexed (or was removed)."""
        ...

    def files(self) -> list[FileRecord]:
        """Every file record, by path."""
        ...

    def replace_files(self, batch: list[tuple[FileRecord, list[Document]]]) -> None:
        """Per file: drop the passages of ``record.path`` (by ``meta["file_path"]``), write the new ones
        (overwriting equal ids), and store the record with its passage count and the time. A file's record
        is stored only once its passages are: an interrupted call leaves each file as it was, or with its
        new passages and record. Every passage must carry its file's ``meta["file_path"]`` (ValueError).
        Files whose passages the store turns away are left as they were, the others written, and then
        ``RefusedFiles`` names them."""
        ...

    def remove_files(self, paths: list[str]) -> int:
        """Drop the files' passages and records; returns the passages removed."""
        ...

    def record_roots(self, paths: Iterable[str | Path]) -> None:
        """Remember the files and folders given to indexing, symlinks resolved, so that whoever serves the
        original files (the search UI) serves only what lies under them. A root inside a recorded one adds
        nothing; one that holds recorded roots replaces them."""
        ...

    def roots(self) -> list[str]:
        """The recorded roots, sorted."""
        ...

    def passages(self, batch_size: int = 500) -> Iterator[list[Document]]:
        """Every passage with its meta and embedding, in lists of at most ``batch_size``, grouped by file:
        ordered by ``meta["file_path"]`` (passages without one first), so one file's passages follow each
        other. What ``store copy`` reads a whole store with."""
        ...

    def bulk(self) -> AbstractContextManager[Any]:
        """A context for a long run of writes (an index run): writes commit as they go, and the store may
        defer the work that makes them searchable until the context ends."""
        ...

    def verify(self) -> None:
        """Raise ``StoreError`` when the store cannot be written safely (damaged, or unavailable); an index
        run calls this first, so it neither skips nor adds files to a store in that state."""
        ...

    def check(self) -> list[Finding]:
        """What is right and wrong with the store (`corpusqa store check`), reading only."""
        ...

    def repair(self) -> list[str]:
        """Repair what ``check`` can find wrong that the store can repair itself; returns what was done."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> CorpusStore: ...

    def __exit__(self, *exc: object) -> None: ...
