"""The bodies the Elasticsearch store sends: index settings and mappings, searches, filters, file records.
Plain dictionaries, built without a client, so that tests can read exactly what would be sent.

Passages are stored as Haystack's ``Document.to_dict()`` (meta flattened into the top level), as
elasticsearch-haystack stores them, so either can read what the other wrote. Text is analysed like the
embedded store's BM25 tokens (lower-cased words, English stopwords removed, no stemming) and scored with
the same BM25 parameters as bm25s (k1 1.5, b 0.75), so both stores rank alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from haystack.dataclasses import Document
from haystack.errors import FilterError
from haystack_integrations.document_stores.elasticsearch.filters import _normalize_filters

from ..contract import FileRecord
from ..filters import PREFIX
from .endpoint import Endpoint

ANALYZER = "corpusqa_text"
#: The mapping's mark that corpusqa made the index (and which layout it has).
MARK = {"corpusqa": 1}
#: ``file_types`` bucket of passages without a ``file_type`` (the embedded store's None).
NO_FILE_TYPE = "(none)"
#: kNN candidates per shard: ten per passage asked for, at least 100 (Elasticsearch allows up to 10,000).
CANDIDATES_PER_RESULT, MIN_CANDIDATES, MAX_CANDIDATES = 10, 100, 10_000
#: Counting distinct values (sources, files per type) is exact below this many, approximate above.
CARDINALITY_PRECISION = 40_000
_KEYWORD = {"type": "keyword"}
#: Fields a Document keeps apart from its meta, left out of the stored source when empty.
_DOCUMENT_FIELDS = ("blob", "score", "embedding", "sparse_embedding")


def index_settings(endpoint: Endpoint) -> dict[str, Any]:
    """The passage index's settings: its analyzer, BM25 parameters, and the shards and replicas asked for."""
    settings: dict[str, Any] = {
        "analysis": {"analyzer": {ANALYZER: {"type": "standard", "stopwords": "_english_"}}},
        "similarity": {"default": {"type": "BM25", "k1": 1.5, "b": 0.75}},
    }
    return settings | _placement(endpoint)


def files_settings(endpoint: Endpoint) -> dict[str, Any]:
    """The file-record index's settings: the shards and replicas asked for, no more (it is small)."""
    return _placement(endpoint) | {"number_of_shards": 1}


def passage_mappings(embedding_dim: int | None) -> dict[str, Any]:
    """Keyword fields for what filters name (file path and type, title, source, id), analysed text for the
    content, any other string meta as a keyword; the vector field only once its dimension is known."""
    properties: dict[str, Any] = {
        "id": _KEYWORD, "content": {"type": "text", "analyzer": ANALYZER}, "file_path": _KEYWORD,
        "file_type": _KEYWORD, "title": _KEYWORD, "source_id": _KEYWORD,
    }  # fmt: skip
    if embedding_dim is not None:
        properties["embedding"] = vector_mapping(embedding_dim)
    strings = {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 8191}}}
    return {"_meta": MARK, "dynamic_templates": [strings], "properties": properties}


def vector_mapping(embedding_dim: int) -> dict[str, Any]:
    """The embedding: an HNSW-indexed vector of the embedder's dimension, compared by cosine similarity."""
    return {"type": "dense_vector", "dims": embedding_dim, "index": True, "similarity": "cosine"}


def files_mappings() -> dict[str, Any]:
    """One document per file record (``kind`` "file") or recorded root (``kind`` "root")."""
    number, real = {"type": "long"}, {"type": "double"}
    properties = {"kind": _KEYWORD, "path": _KEYWORD, "content_hash": _KEYWORD, "size": number, "mtime": real,
                  "passages": number, "indexed_at": real}  # fmt: skip
    return {"_meta": MARK, "dynamic": "strict", "properties": properties}


def mapping_problem(found: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """How the mapping ``found`` on an existing index differs from ``wanted`` (without a vector field) in what
    the store relies on: each field's type and the content's analyzer, and a vector field, where there is
    one, compared by cosine similarity. None when it does not differ. A vector field the index still lacks
    is no difference: the store adds it with the first embedding."""
    if found.get("_meta") != MARK:
        return "it was not created by corpusqa"
    properties = found.get("properties", {})
    for name, field in wanted["properties"].items():
        have = properties.get(name)
        if have is None:
            return f"it has no field {name!r}"
        for key in ("type", "analyzer"):
            if key in field and field[key] != have.get(key):
                return f"its field {name!r} has {key} {have.get(key)!r}, not {field[key]!r}"
    vector = properties.get("embedding")
    if vector is not None and (vector.get("type"), vector.get("similarity")) != ("dense_vector", "cosine"):
        return f"its field 'embedding' is {vector.get('type')!r} by {vector.get('similarity')!r}, not a dense_vector by cosine"
    return None


def mapped_dimension(mappings: dict[str, Any]) -> int | None:
    """The embedding dimension of a passage index's mapping, None while it has no vector field."""
    return mappings.get("properties", {}).get("embedding", {}).get("dims")


def source(document: Document) -> dict[str, Any]:
    """What is stored for a passage: ``Document.to_dict()`` without its empty fields and its score."""
    found = document.to_dict()
    return {k: v for k, v in found.items() if k not in _DOCUMENT_FIELDS or (v is not None and k != "score")}


def passage(hit: dict[str, Any], score: float | None = None) -> Document:
    """The Document of a search hit, with ``score``."""
    return Document.from_dict({**hit["_source"], "score": score})


def bm25_body(query: str, top_k: int, filters: dict[str, Any] | None) -> dict[str, Any]:
    """Passages whose content shares words with ``query``, by BM25, under ``filters``. Only the content is
    searched, without fuzziness (elasticsearch-haystack's BM25 searches every field, fuzzily): a question's
    "1889" must not match "1869", nor a file name."""
    query_part = {"bool": {"must": [{"match": {"content": {"query": query}}}], "filter": _filter_list(filters)}}
    return {"size": top_k, "query": query_part, "_source": {"excludes": ["embedding"]}, "track_total_hits": False}


def knn_body(embedding: Sequence[float], top_k: int, filters: dict[str, Any] | None) -> dict[str, Any]:
    """The ``top_k`` nearest passages by HNSW search among those passing ``filters`` (filtered during the
    search, so ``top_k`` come back whenever that many pass); vectors are left out of the response."""
    candidates = min(max(CANDIDATES_PER_RESULT * top_k, MIN_CANDIDATES), MAX_CANDIDATES)
    knn: dict[str, Any] = {"field": "embedding", "query_vector": [float(x) for x in embedding], "k": top_k,
                           "num_candidates": candidates}  # fmt: skip
    if filters:
        knn["filter"] = es_filter(filters)
    return {"knn": knn, "size": top_k, "_source": {"excludes": ["embedding"]}}


def cosine(score: float) -> float:
    """The cosine similarity of a kNN hit: Elasticsearch scores cosine as (1 + cosine) / 2."""
    return 2.0 * score - 1.0


def filter_query(filters: dict[str, Any] | None) -> dict[str, Any]:
    """A query matching the passages that pass ``filters`` (every passage for None)."""
    return {"bool": {"filter": _filter_list(filters)}}


def es_filter(filters: dict[str, Any]) -> dict[str, Any]:
    """A validated Haystack filter (``corpusqa.indexing.store.filters``) as an Elasticsearch query:
    comparisons by elasticsearch-haystack's own translation; ``prefix``, which it lacks, as a prefix query;
    AND, OR and NOT over them here, so that ``prefix`` may stand anywhere in the tree.

    A comparison on ``content`` is refused (``FilterError``): the content is mapped as analysed text, so a
    ``term`` (elasticsearch-haystack's ``==``) compares a whole passage with its single words and matches
    nothing, and ``!=``, ``in`` or ``prefix`` would be as wrong; only a second, keyword copy of every
    passage's text could compare it exactly."""
    if "field" in filters:
        if _field(filters["field"]) == "content":
            raise FilterError(f"The Elasticsearch store cannot filter on a passage's content (it keeps the text "
                              f"analysed for BM25, with no exact value to compare): {filters}")  # fmt: skip
        if filters["operator"] == PREFIX:
            return {"prefix": {_field(filters["field"]): filters["value"]}}
        return _normalize_filters(filters)
    conditions = [es_filter(condition) for condition in filters["conditions"]]
    if filters["operator"] == "AND":
        return {"bool": {"must": conditions}}
    if filters["operator"] == "OR":
        return {"bool": {"should": conditions, "minimum_should_match": 1}}
    return {"bool": {"must_not": [{"bool": {"must": conditions}}]}}


def stats_body() -> dict[str, Any]:
    """Counts for ``stats``: distinct sources (passages without a ``source_id`` count one each), per file type
    the passages and distinct files, and the passages with an embedding."""
    distinct = {"precision_threshold": CARDINALITY_PRECISION}
    per_type = {"terms": {"field": "file_type", "size": 1000, "missing": NO_FILE_TYPE},
                "aggs": {"files": {"cardinality": {"field": "file_path", **distinct}}}}  # fmt: skip
    return {
        "size": 0, "track_total_hits": True,
        "aggs": {"sources": {"cardinality": {"field": "source_id", **distinct}},
                 "unsourced": {"missing": {"field": "source_id"}}, "file_types": per_type,
                 "embedded": {"filter": {"exists": {"field": "embedding"}}}},
    }  # fmt: skip


def files_stats_body() -> dict[str, Any]:
    """The number of file records and the newest ``indexed_at``."""
    return {"size": 0, "track_total_hits": True, "query": {"term": {"kind": "file"}},
            "aggs": {"last_indexed_at": {"max": {"field": "indexed_at"}}}}  # fmt: skip


def file_counts_body(after: dict[str, Any] | None, size: int = 1000) -> dict[str, Any]:
    """One page of passages counted per ``file_path`` (a composite aggregation, paged by ``after``)."""
    composite: dict[str, Any] = {"size": size, "sources": [{"path": {"terms": {"field": "file_path"}}}]}
    if after is not None:
        composite["after"] = after
    return {"size": 0, "aggs": {"files": {"composite": composite}}}


def record_id(kind: str, path: str) -> str:
    """The id of a record: its kind and the sha256 of its path (ids are at most 512 bytes, paths are not)."""
    return f"{kind}-{hashlib.sha256(path.encode('utf-8', 'surrogatepass')).hexdigest()}"


def file_document(record: FileRecord) -> dict[str, Any]:
    return {"kind": "file", "path": record.path, "content_hash": record.content_hash, "size": record.size,
            "mtime": record.mtime, "passages": record.passages, "indexed_at": record.indexed_at}  # fmt: skip


def file_record(stored: dict[str, Any]) -> FileRecord:
    return FileRecord(stored["path"], stored["content_hash"], stored["size"], stored["mtime"], stored["passages"],
                      stored["indexed_at"])  # fmt: skip


def stale_passages(paths: Sequence[str], keep: Sequence[str]) -> dict[str, Any]:
    """The passages of the files at ``paths`` other than those with the ids in ``keep``."""
    return {"bool": {"filter": [{"terms": {"file_path": list(paths)}}], "must_not": [{"ids": {"values": list(keep)}}]}}


def _filter_list(filters: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [es_filter(filters)] if filters else []


def _field(name: str) -> str:
    """A filter's field as stored: meta is flattened into the top level, as elasticsearch-haystack does."""
    return name[len("meta."):] if name.startswith("meta.") else name


def _placement(endpoint: Endpoint) -> dict[str, Any]:
    given = {"number_of_shards": endpoint.shards, "number_of_replicas": endpoint.replicas}
    return {key: value for key, value in given.items() if value is not None}
