"""Retrievers over any corpusqa store (the embedded one, Elasticsearch): written once against the store
contract's ``bm25(query, top_k, filters)`` and ``dense(embedding, top_k, filters)`` (``SearchStore``).

Hybrid retrieval is Haystack's own DocumentJoiner in reciprocal-rank-fusion mode, wired in the YAML.
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.serialization import import_class_by_name

from corpusqa.indexing.store.contract import SearchStore


class _StoreRetriever:
    """What both retrievers share: ``document_store``, the ``top_k`` passages returned and ``filters`` applied
    when a run names none, and YAML (de)serialization."""

    def __init__(self, document_store: SearchStore, top_k: int = 10, filters: dict[str, Any] | None = None):
        self.document_store = document_store
        self.top_k = top_k
        self.filters = filters

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), top_k=self.top_k, filters=self.filters)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        store = data["init_parameters"]["document_store"]
        data["init_parameters"]["document_store"] = import_class_by_name(store["type"]).from_dict(store)
        return default_from_dict(cls, data)


@component
class BM25Retriever(_StoreRetriever):
    """Passages ranked by BM25 on the query's words: strong on names, numbers and rare terms."""

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None) -> dict:
        return {"documents": self.document_store.bm25(query, top_k or self.top_k, filters or self.filters)}


@component
class DenseRetriever(_StoreRetriever):
    """Passages ranked by cosine similarity to the query embedding: finds paraphrases BM25 misses."""

    @component.output_types(documents=list[Document])
    def run(
        self, query_embedding: list[float], top_k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict:
        return {"documents": self.document_store.dense(query_embedding, top_k or self.top_k, filters or self.filters)}
