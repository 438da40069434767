"""The Elasticsearch store: corpusqa's store contract over an Elasticsearch index, for corpora past one
machine, or wherever a team already runs Elasticsearch.

Two indexes: ``INDEX`` holds the passages (as elasticsearch-haystack stores Documents: meta flattened,
the embedding in ``embedding``), ``INDEX-files`` one document per file record and per recorded root.
Haystack's DocumentStore methods (``write_documents``, ``delete_documents``, ``count_documents``) are
elasticsearch-haystack's ``ElasticsearchDocumentStore``; what it lacks is written here, each part saying why:
creating the index with settings (it passes mappings only), and only for writers (``create``), the vector
field added with the first embedding's dimension, BM25 on the content alone, cosine scores, ``prefix``
filters, reading past 10,000 documents, file records, and bulk writes that retry with back-off and read
each document's result.

Elasticsearch has no transactions, so writes are ordered to leave a consistent store wherever they stop:
``replace_files`` writes a file's new passages, then deletes its stale ones, then its record; a run killed
in between leaves the old record (or none), so the next run indexes that file again. A file some of whose
passages Elasticsearch refuses (a mapping conflict, a document too large) is put back as it was: the passages
that write created are deleted again, its stale ones and its record left alone, and ``RefusedFiles`` names it
with the passage and Elasticsearch's reason. ``remove_files`` deletes passages before records, so a record
never outlives its passages unnoticed: the next ``--prune`` removes it again. Everything that can be checked
before writing (vector dimensions, filters, the mapping of an existing index) is, so a refused write writes
nothing.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError, helpers
from haystack import default_from_dict, default_to_dict
from haystack.dataclasses import Document
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

from .. import filters as _filters
from ..contract import FileRecord, Finding, RefusedFiles, StoreError, StoreStats
from ..roots import outermost
from . import bodies, responses
from .endpoint import Endpoint, client_options, has_credentials
from .errors import FAILURES, explained
from .names import FILES_SUFFIX

#: Bulk writes: actions per request, and retries of documents Elasticsearch turns away while busy (429),
#: waiting 1, 2, 4... up to 30 s between tries (requests that fail whole are retried by the client).
BULK_CHUNK, BULK_RETRIES, BULK_BACKOFF, BULK_MAX_BACKOFF = 500, 6, 1.0, 30.0
#: Documents per page when reading many (sorted pages: Elasticsearch stops from/size paging at 10,000).
PAGE = 1000
#: Values per terms query (Elasticsearch's default limit is 65,536).
TERMS = 10_000

T = TypeVar("T")


def _explained(method: Callable[..., T]) -> Callable[..., T]:
    """Elasticsearch's failures in ``method`` (a generator's too, while it is iterated) as one ``StoreError``
    line (see ``errors``)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def iterating(self: ElasticsearchStore, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except FAILURES as error:
                raise explained(self.endpoint, error, has_credentials(os.environ)) from None

        return iterating

    @functools.wraps(method)
    def explaining(self: ElasticsearchStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except FAILURES as error:
            raise explained(self.endpoint, error, has_credentials(os.environ)) from None

    return explaining


class ElasticsearchStore:
    """Passages, BM25 and dense retrieval, and file records, in an Elasticsearch index; a Haystack 3
    ``DocumentStore`` keeping corpusqa's ``CorpusStore`` contract.

    ``url``: ``es://HOST[:PORT]/INDEX`` (``ess://`` for TLS, see ``endpoint``); credentials come from the
    environment. ``embedding_dim``: checked against the index's vectors; None takes it from the first
    embedding written. ``create``: whether opening creates the indexes when missing (writers: `corpusqa
    index`, `store copy`'s target); without it (readers, and a store a pipeline loads) a missing index is
    one line naming it and the server. Opening connects, and refuses an existing index whose mapping
    differs, in one line, before anything is written.

    Filters cannot compare ``content`` (``content_filters``): it is analysed text for BM25, with no exact
    value to compare; such filters are refused (``FilterError``) before any request.
    """

    content_filters = False

    def __init__(self, url: str, embedding_dim: int | None = None, create: bool = False):
        self.endpoint = Endpoint.parse(url)
        self.embedding_dim = embedding_dim
        self.create = create
        self.index, self.files_index = self.endpoint.index, self.endpoint.index + FILES_SUFFIX
        options = client_options(self.endpoint, os.environ)
        self._client = Elasticsearch(**options)
        hosts, api_key = options.pop("hosts"), options.pop("api_key", None)
        self.documents = ElasticsearchDocumentStore(
            hosts=hosts, index=self.index, custom_mapping=bodies.passage_mappings(None), api_key=api_key,
            api_key_id=None, **options,
        )  # fmt: skip
        self._bulk = False
        self._dim: int | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        return self.endpoint.location

    @_explained
    def _open(self) -> None:
        """Connect, then check (or create, for a writer) the passage index and the file-record index."""
        self._client.info()
        created = self._ensure(self.index, bodies.index_settings(self.endpoint), bodies.passage_mappings(self.embedding_dim))
        try:
            self._ensure(self.files_index, bodies.files_settings(self.endpoint), bodies.files_mappings())
        except BaseException:
            if created:  # leave the server as it was: no passage index without its companion
                self._client.options(ignore_status=404).indices.delete(index=self.index)
            raise
        self._dim = self._mapped_dimension()
        if self.embedding_dim is not None and self._dim is not None and self._dim != self.embedding_dim:
            raise StoreError(f"store {self.location}: index {self.index!r} holds {self._dim}-d embeddings, "
                             f"not {self.embedding_dim}-d")  # fmt: skip

    def _ensure(self, index: str, settings: dict[str, Any], mappings: dict[str, Any]) -> bool:
        """Create ``index`` unless it exists (refuse a missing one unless ``create``); refuse it when its mapping
        differs. Whether it was created."""
        if not self._client.indices.exists(index=index):
            if not self.create:
                raise StoreError(f"store {self.location}: no index {index!r} on Elasticsearch at {self.endpoint.url}; "
                                 f"index a folder into it first (corpusqa index PATH --store {self.location})")  # fmt: skip
            answer = self._client.options(ignore_status=400).indices.create(index=index, settings=settings, mappings=mappings)
            if answer.meta.status == 200:
                return True
            if answer.body.get("error", {}).get("type") != "resource_already_exists_exception":  # not a race
                raise StoreError(f"store {self.location}: Elasticsearch refused to create index {index!r} "
                                 f"({answer.body.get('error', {}).get('reason', answer.body)})")  # fmt: skip
        found = self._mappings(index)
        wanted = {**mappings, "properties": {k: v for k, v in mappings["properties"].items() if k != "embedding"}}
        problem = bodies.mapping_problem(found, wanted)
        if problem is not None:
            raise StoreError(f"store {self.location}: index {index!r} exists with another mapping ({problem}); "
                             "give another index name, or delete that index")  # fmt: skip
        return False

    def _mapped_dimension(self) -> int | None:
        return bodies.mapped_dimension(self._mappings(self.index))

    def _mappings(self, index: str) -> dict[str, Any]:
        """The mappings of ``index`` (answered under the concrete index's name, which an alias is not)."""
        return next(iter(self._client.indices.get_mapping(index=index).values()))["mappings"]

    # -- Haystack DocumentStore protocol ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The store's location and dimension; never a credential (those stay in the environment). Not
        ``create``: a store loaded from its dictionary (a query pipeline's) never creates an index."""
        return default_to_dict(self, url=self.location, embedding_dim=self.embedding_dim)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ElasticsearchStore:
        return default_from_dict(cls, data)

    @_explained
    def count_documents(self) -> int:
        return self.documents.count_documents()

    @_explained
    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Matching documents, by id; read in sorted pages (elasticsearch-haystack pages by from/size, which
        Elasticsearch stops at 10,000 documents)."""
        query = bodies.filter_query(_validated(filters))
        return [bodies.passage(hit) for hit in self._scan(self.index, query, ["id"])]

    @_explained
    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """elasticsearch-haystack's write (NONE means FAIL), after checking what it would refuse midway."""
        documents = self._checked(documents)
        self._add_vector_field(documents)
        return self.documents.write_documents(documents, policy, refresh=False if self._bulk else "wait_for")

    @_explained
    def delete_documents(self, document_ids: list[str]) -> None:
        self.documents.delete_documents(document_ids, refresh=False if self._bulk else "wait_for")

    # -- retrieval --------------------------------------------------------------------------------

    @_explained
    def bm25(self, query: str, top_k: int, filters: dict[str, Any] | None = None) -> list[Document]:
        """The ``top_k`` passages best matching ``query`` by BM25 on their content, best first."""
        body = bodies.bm25_body(query, top_k, _validated(filters))
        if top_k < 1:
            return []
        hits = self._client.search(index=self.index, **body)["hits"]["hits"]
        return [bodies.passage(hit, hit["_score"]) for hit in hits]

    @_explained
    def dense(
        self, embedding: Sequence[float] | np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Document]:
        """The ``top_k`` passages nearest to ``embedding`` (``score``: cosine similarity), best first."""
        filters = _validated(filters)
        dim = self._vector_dimension()
        if dim is None:
            raise ValueError(f"The store at {self.location} has no embeddings: re-index it with embeddings for "
                             "dense retrieval")  # fmt: skip
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if len(query) != dim:
            raise ValueError(f"The query embedding has {len(query)} dimensions, the store's {dim}")
        if top_k < 1:
            return []
        body = bodies.knn_body(query.tolist(), min(top_k, bodies.MAX_CANDIDATES), filters)
        hits = self._client.search(index=self.index, **body)["hits"]["hits"]
        return [bodies.passage(hit, bodies.cosine(hit["_score"])) for hit in hits]

    # -- files ----------------------------------------------------------------------------------------

    @_explained
    def file_record(self, path: str) -> FileRecord | None:
        """Read by id, so a record is seen as soon as it is written (searches wait for a refresh)."""
        try:
            found = self._client.get(index=self.files_index, id=bodies.record_id("file", path))
        except NotFoundError:
            return None
        return bodies.file_record(found["_source"])

    @_explained
    def files(self) -> list[FileRecord]:
        query = {"term": {"kind": "file"}}
        return [bodies.file_record(hit["_source"]) for hit in self._scan(self.files_index, query, ["path"])]

    @_explained
    def replace_files(self, batch: list[tuple[FileRecord, list[Document]]]) -> None:
        """Per file, the new passages, then the stale ones deleted, then the record; a file some of whose
        passages Elasticsearch refused is put back as it was and named by ``RefusedFiles`` (see the module)."""
        self._checked([d for _, documents in batch for d in documents])
        batch = [(record, list({d.id: d for d in documents}.values())) for record, documents in batch]
        for record, documents in batch:
            stray = next((d for d in documents if d.meta.get("file_path") != record.path), None)
            if stray is not None:
                found = stray.meta.get("file_path")
                raise ValueError(f"Passage {stray.id} has file_path {found!r}, not {record.path!r}")
        if not batch:
            return
        passages = [d for _, documents in batch for d in documents]
        self._add_vector_field(passages)
        outcome = self._send([{"_index": self.index, "_id": d.id, "_source": bodies.source(d)} for d in passages])
        owners = {d.id: record.path for record, documents in batch for d in documents}
        refused = responses.refused_files(owners, outcome)
        if refused:  # put those files back as they were: drop the passages this write added to them
            added = sorted(i for i in outcome.created if owners[i] in refused)
            self._write([{"_op_type": "delete", "_index": self.index, "_id": i} for i in added], ignore_status=404)
            batch = [(record, documents) for record, documents in batch if record.path not in refused]
            passages = [d for _, documents in batch for d in documents]
        for paths in _chunks([record.path for record, _ in batch], TERMS):
            chunk = set(paths)
            keep = [d.id for d in passages if d.meta["file_path"] in chunk]
            self._client.delete_by_query(index=self.index, query=bodies.stale_passages(paths, keep), conflicts="proceed")
        now = time.time()
        records = [FileRecord(r.path, r.content_hash, r.size, r.mtime, len(documents), now) for r, documents in batch]
        self._write([self._record_action(r) for r in records])
        self._refresh()
        if refused:
            raise RefusedFiles(self.location, refused)

    @_explained
    def remove_files(self, paths: list[str]) -> int:
        """Drop the files' passages, then their records; returns the passages removed."""
        removed = 0
        for chunk in _chunks(paths, TERMS):
            query = {"terms": {"file_path": chunk}}
            removed += self._client.delete_by_query(index=self.index, query=query, conflicts="proceed")["deleted"]
        deletions = [{"_op_type": "delete", "_index": self.files_index, "_id": bodies.record_id("file", p)}
                     for p in paths]  # fmt: skip
        self._write(deletions, ignore_status=404)
        self._refresh()
        return removed

    @_explained
    def record_roots(self, paths: Iterable[str | Path]) -> None:
        recorded = self.roots()
        kept = outermost(paths, recorded)
        actions = [{"_op_type": "delete", "_index": self.files_index, "_id": bodies.record_id("root", p)}
                   for p in recorded if p not in kept]  # fmt: skip
        actions += [{"_index": self.files_index, "_id": bodies.record_id("root", p),
                     "_source": {"kind": "root", "path": p}} for p in kept if p not in recorded]  # fmt: skip
        self._write(actions, ignore_status=404)
        self._client.indices.refresh(index=self.files_index)  # roots are read by search

    @_explained
    def roots(self) -> list[str]:
        return [hit["_source"]["path"] for hit in self._scan(self.files_index, {"term": {"kind": "root"}}, ["path"])]

    @_explained
    def passages(self, batch_size: int = 500) -> Iterator[list[Document]]:
        """Every passage with its embedding, by file path (none first), then id."""
        order = [{"file_path": {"order": "asc", "missing": "_first"}}, "id"]
        batch: list[Document] = []
        for hit in self._scan(self.index, {"match_all": {}}, order, page=batch_size):
            batch.append(bodies.passage(hit))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- the store as a whole ---------------------------------------------------------------------

    @property
    def folder(self) -> None:
        """A server store keeps no local folder."""
        return None

    def has_embeddings(self) -> bool:
        return self._vector_dimension() is not None

    @_explained
    def stats(self) -> StoreStats:
        """The contract's stats; ``documents`` and per-type ``files`` are exact below 40,000 distinct values
        (Elasticsearch counts distinct values approximately above), ``disk_bytes`` the primary shards' size."""
        found = self._client.search(index=self.index, **bodies.stats_body())
        aggregations, passages = found["aggregations"], found["hits"]["total"]["value"]
        file_types = {
            (None if bucket["key"] == bodies.NO_FILE_TYPE else bucket["key"]):
                {"files": bucket["files"]["value"], "passages": bucket["doc_count"]}
            for bucket in aggregations["file_types"]["buckets"]
        }  # fmt: skip
        records = self._client.search(index=self.files_index, **bodies.files_stats_body())
        dim, embedded = self._vector_dimension(), aggregations["embedded"]["doc_count"]
        # one request per index: the answer is keyed by concrete index names, which an alias is not
        sizes = {part: responses.primary_bytes(self._client.indices.stats(index=name, metric="store"))
                 for part, name in (("passages", self.index), ("files", self.files_index))}  # fmt: skip
        return {
            "passages": passages,
            "documents": aggregations["sources"]["value"] + aggregations["unsourced"]["doc_count"],
            "files": records["hits"]["total"]["value"],
            "file_types": dict(sorted(file_types.items(), key=lambda item: (item[0] is not None, item[0] or ""))),
            "last_indexed_at": records["aggregations"]["last_indexed_at"]["value"],
            "embedding_dim": dim,
            "bm25_passages": passages,
            "dense_passages": embedded,
            "dense_index": None if dim is None else "hnsw",
            "disk_bytes": sizes,
        }

    @contextmanager
    def bulk(self) -> Iterator[ElasticsearchStore]:
        """Writes skip waiting for each change to be searchable (Elasticsearch makes them so within its
        refresh interval, a second by default); leaving refreshes both indexes."""
        if self._bulk:
            yield self
            return
        self._bulk = True
        try:
            yield self
        finally:
            self._bulk = False
            self._refresh()

    @_explained
    def verify(self) -> None:
        """Refuse to write while a primary shard of either index is unassigned (health red)."""
        health = self._client.cluster.health(index=f"{self.index},{self.files_index}")
        if health["status"] == "red":
            raise StoreError(f"store {self.location}: index {self.index!r} is red (a primary shard is unassigned): "
                             "Elasticsearch cannot hold every passage; GET _cluster/allocation/explain says why")  # fmt: skip

    @_explained
    def check(self) -> list[Finding]:
        """The server and the indexes' health, the mapping (checked on opening), and every file's passages."""
        info = self._client.info()
        health = self._client.cluster.health(index=f"{self.index},{self.files_index}")["status"]
        findings = [
            Finding("server", True, f"Elasticsearch {info['version']['number']} at {self.endpoint.url}"),
            Finding("indexes", health != "red", f"{self.index!r} and {self.files_index!r}: health {health}"),
            Finding("mapping", True, "corpusqa's mapping" + (f", {self._dim}-d embeddings" if self._dim else "")),
        ]
        short = self._short_files()
        findings += [Finding("files", False, f"{path}: {found:,} passages stored, {recorded:,} recorded")
                     for path, found, recorded in short]  # fmt: skip
        if not short:
            findings.append(Finding("files", True, "every file's passages are stored"))
        return findings

    def repair(self) -> list[str]:
        """Remove the files whose passages are not all stored (passages and records), so that the next index
        run reads them again; Elasticsearch maintains its own indexes, so there is nothing else to rebuild."""
        short = [path for path, _, _ in self._short_files()]
        if not short:
            return ["nothing to repair: every file's passages are stored, and Elasticsearch maintains its indexes"]
        self.remove_files(short)
        return [f"removed {len(short):,} files whose passages were not all stored: `corpusqa index` reads them again"]

    @_explained
    def _short_files(self) -> list[tuple[str, int, int]]:
        """(path, passages stored, passages recorded) of each file whose counts differ."""
        counts: dict[str, int] = {}
        after = None
        while True:
            page = self._client.search(index=self.index, **bodies.file_counts_body(after))["aggregations"]["files"]
            counts.update({bucket["key"]["path"]: bucket["doc_count"] for bucket in page["buckets"]})
            after = page.get("after_key")
            if after is None or not page["buckets"]:
                break
        return [(r.path, counts.get(r.path, 0), r.passages) for r in self.files() if counts.get(r.path, 0) != r.passages]

    def close(self) -> None:
        self._client.close()
        self.documents.close()

    def __enter__(self) -> ElasticsearchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------

    def _checked(self, documents: Any) -> list[Document]:
        """What a write would have Elasticsearch refuse document by document, refused for all of them first:
        blobs and sparse embeddings (not stored), vectors of another dimension or of zero length (cosine
        similarity cannot compare those)."""
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
            raise ValueError("Please provide a list of Documents.")
        documents = list(documents)
        if not all(isinstance(document, Document) for document in documents):
            raise ValueError("Please provide a list of Documents.")
        dim = self._vector_dimension() or self.embedding_dim
        for document in documents:
            if document.blob is not None or document.sparse_embedding is not None:
                raise ValueError(f"Document {document.id}: the store keeps content, meta and embedding; not a blob "
                                 "or a sparse embedding")  # fmt: skip
            if document.embedding is None:
                continue
            vector = np.asarray(document.embedding, dtype=np.float32)
            dim = dim or (len(vector) if vector.ndim == 1 else None)
            if vector.shape != (dim,):
                raise ValueError(f"Document {document.id} has an embedding of shape {vector.shape}, not ({dim},)")
            if not np.any(vector):
                raise ValueError(f"Document {document.id} has an embedding of zero length: cosine similarity "
                                 "cannot compare it")  # fmt: skip
        return documents

    def _add_vector_field(self, documents: list[Document]) -> None:
        """Map the vector field with the dimension of the first embedding written (checked by ``_checked``):
        the embedder's. Mapped before the write, or Elasticsearch would map the vectors as plain floats."""
        if self._vector_dimension() is None:
            dim = next((len(d.embedding) for d in documents if d.embedding is not None), None)
            if dim is not None:
                self._client.indices.put_mapping(index=self.index, properties={"embedding": bodies.vector_mapping(dim)})
                self._dim = dim

    def _vector_dimension(self) -> int | None:
        """The index's embedding dimension; asked again while unknown (another process may add vectors)."""
        if self._dim is None:
            self._dim = self._mapped_dimension()
        return self._dim

    def _record_action(self, record: FileRecord) -> dict[str, Any]:
        return {"_index": self.files_index, "_id": bodies.record_id("file", record.path),
                "_source": bodies.file_document(record)}  # fmt: skip

    def _write(self, actions: list[dict[str, Any]], ignore_status: int | tuple[int, ...] = ()) -> None:
        """``_send`` ``actions``; StoreError naming the first failure if any document still fails."""
        refused = self._send(actions, ignore_status).refused
        if refused:
            first, reason = next(iter(refused.items()))
            raise StoreError(f"store {self.location}: Elasticsearch refused {len(refused):,} of {len(actions):,} "
                             f"writes, the first (id {first}): {reason}")  # fmt: skip

    def _send(self, actions: list[dict[str, Any]], ignore_status: int | tuple[int, ...] = ()) -> responses.BulkOutcome:
        """Bulk ``actions``, retrying documents turned away while Elasticsearch is busy (429) with back-off;
        what became of each (a status in ``ignore_status`` is no failure)."""
        if not actions:
            return responses.BulkOutcome()
        results = helpers.streaming_bulk(
            self._client, actions, chunk_size=BULK_CHUNK, max_retries=BULK_RETRIES, initial_backoff=BULK_BACKOFF,
            max_backoff=BULK_MAX_BACKOFF, raise_on_error=False, ignore_status=ignore_status,
        )  # fmt: skip
        # the helper's own "ok" is False for an ignored status too: each item's status decides, read here
        ignored = (ignore_status,) if isinstance(ignore_status, int) else ignore_status
        return responses.bulk_outcome((item for _, item in results), ignored)

    def _refresh(self) -> None:
        """Make what was written searchable now, outside a bulk run."""
        if not self._bulk:
            self._client.indices.refresh(index=f"{self.index},{self.files_index}")

    def _scan(
        self, index: str, query: dict[str, Any], sort: list[Any], page: int = PAGE
    ) -> Iterator[dict[str, Any]]:
        """Every hit of ``query``, in ``sort`` order (which must be total), page by page after the last."""
        after = None
        while True:
            extra = {} if after is None else {"search_after": after}
            hits = self._client.search(index=index, query=query, sort=sort, size=page, **extra)["hits"]["hits"]
            yield from hits
            if len(hits) < page:
                return
            after = hits[-1]["sort"]


def _validated(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``filters``, checked: malformed ones, and those comparing ``content`` (``bodies.es_filter`` says why),
    raise ``FilterError`` before any request."""
    if filters:
        _filters.validate(filters)
        bodies.es_filter(filters)
    return filters


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for begin in range(0, len(items), size):
        yield list(items[begin : begin + size])
