"""What `corpusqa serve` does behind its routes, without HTTP: one store, its query pipelines loaded once
and kept, questions answered one at a time, and one index run at a time beside them.

Questions are read under a lock: a reader model and its fast tokenizer are not safe to call from several
threads at once, and on a CPU one question already uses every core. An index run writes through its own
store connection while questions are answered; the store serves readers the indexes it has until a commit
lands, then catches up (see ``corpusqa.indexing.store``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from corpusqa.indexing.indexer import IndexSettings, index_paths
from corpusqa.indexing.store.contract import CorpusStore, StoreStats
from corpusqa.indexing.store.location import open_store
from corpusqa.pipelines.answers import result_json
from corpusqa.pipelines.query import QueryPipeline, ask, file_type_filter, load_query_pipeline
from corpusqa.pipelines.store_checks import RetrieverChoice, choose_retrievers
from corpusqa.server.settings import ServerSettings
from corpusqa.ui.uploads import MB, embeds, index_upload

logger = logging.getLogger("corpusqa.server")
#: How a request asks for BM25, for the refusal of dense retrieval on a store without embeddings.
_USE_BM25 = '"retriever": "bm25"'


class IndexBusy(Exception):
    """Another index run holds the store."""


class PathRefused(ValueError):
    """A path the server will not index, and why."""


class Service:
    """The store, its pipelines and the two locks; thread-safe."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self._store: CorpusStore | None = None
        self._opening = threading.Lock()
        self._noted: set[str] = set()
        self._pipelines: dict[str, QueryPipeline] = {}
        self._loading = threading.Lock()
        self._reading = threading.Lock()
        self._indexing = threading.Lock()
        self._embedder: Any = None

    @property
    def store(self) -> CorpusStore:
        """The store, opened on first use. One that cannot be opened (``StoreError``: its database missing or
        damaged...) raises at every use until it can, so a server started on it answers 503 with the reason,
        and serves once `corpusqa store repair` has mended it, without a restart."""
        with self._opening:
            if self._store is None:
                self._store = open_store(self.settings.store)
            return self._store

    def choose(self, retriever: str | None = None) -> RetrieverChoice:
        """The retriever a request answers with (``choose_retrievers``): the one it names, else the settings';
        on a store without embeddings BM25, with a note (logged once), and dense or hybrid named refused."""
        asked = [retriever] if retriever else None
        choice = choose_retrievers(self.store, self.settings.store, asked, (self.settings.retriever,), _USE_BM25)
        if choice.note is not None and choice.note not in self._noted:
            self._noted.add(choice.note)
            logger.warning("corpusqa serve: %s", choice.note)
        return choice

    def pipeline(self, retriever: str | None = None) -> QueryPipeline:
        """The query pipeline of ``retriever`` (default: the settings', or the one the store can answer with:
        see ``choose``), loaded and warmed up on first use."""
        retriever = retriever or self.choose().retriever
        with self._loading:
            if retriever not in self._pipelines:
                settings = self.settings
                pipeline = load_query_pipeline(retriever, settings.store, dict(settings.reader), settings.reranker)
                pipeline.retrieval.warm_up()
                pipeline.reader.warm_up()
                self._pipelines[retriever] = pipeline
            return self._pipelines[retriever]

    def ask(
        self,
        question: str,
        retriever: str | None = None,
        passages: int | None = None,
        file_types: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict:
        """The JSON record of `corpusqa ask --json` (``corpusqa.pipelines.answers``), with a ``note`` when the
        store answered with another retriever than the default (see ``choose``); ``options`` override fields of
        the pipeline reader's ``ReadOptions``."""
        choice = self.choose(retriever)
        pipeline = self.pipeline(choice.retriever)
        read_options = replace(pipeline.reader.options, **(options or {}))
        with self._reading:
            result = ask(pipeline, question, passages, file_type_filter(file_types), read_options)
        record = result_json(result)
        return record if choice.note is None else {**record, "note": choice.note}

    def index_paths(self, paths: Sequence[str], prune: bool = False) -> dict:
        """Index files and folders on this machine, each under an allowed root (``allowed_roots``)."""
        checked = [self._allowed(path) for path in paths]
        with self._exclusive():
            report = index_paths(checked, self.store, self._indexer(), embed=self._embeds(), prune=prune, progress=False)
        return {
            "indexed": report.indexed,
            "skipped": report.skipped,
            "removed": report.removed,
            "failed": [{"path": path, "reason": reason} for path, reason in report.failed],
            "passages": report.passages,
            "seconds": round(report.seconds, 3),
        }

    def index_uploads(self, files: Sequence[tuple[str, bytes]]) -> list[dict]:
        """Save and index uploaded files as the UI does (``corpusqa.ui.uploads``): one outcome per file."""
        outcomes = []
        with self._exclusive():
            for name, data in files:
                outcome = index_upload(
                    self.store, name, data, max_bytes=self.settings.max_upload_mb * MB,
                    embedder=self._indexer(), embed=self._embeds(), folder=self.settings.folder,
                )  # fmt: skip
                outcomes.append(
                    {
                        "name": outcome.name,
                        "path": None if outcome.path is None else str(outcome.path),
                        "passages": outcome.passages,
                        "unchanged": outcome.unchanged,
                        "error": outcome.error,
                    }
                )
        return outcomes

    def stats(self) -> StoreStats:
        return self.store.stats()

    def allowed_roots(self) -> list[Path]:
        """Where paths sent to /index may lie: the settings' index roots and the folders indexed before."""
        return [Path(os.path.realpath(root)) for root in [*self.settings.index_roots, *self.store.roots()]]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def _allowed(self, path: str) -> Path:
        real = Path(os.path.realpath(path))
        if not real.exists():
            raise PathRefused(f"{path}: no such file or folder on the server")
        if not any(real.is_relative_to(root) for root in self.allowed_roots()):
            raise PathRefused(
                f"{path}: outside the folders this server indexes (start it with --index-root FOLDER to allow one)"
            )
        return real

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One index run at a time; a second is refused at once rather than left waiting."""
        if not self._indexing.acquire(blocking=False):
            raise IndexBusy("an index run is in progress; send this again when it has finished")
        try:
            yield
        finally:
            self._indexing.release()

    def _embeds(self) -> bool:
        return embeds(self.store.stats())

    def _indexer(self) -> Any:
        """The passage embedder, loaded on the first index run that needs it (None: the store has none)."""
        if self._embedder is None and self._embeds():
            self._embedder = IndexSettings().embedder()
            self._embedder.warm_up()
        return self._embedder
