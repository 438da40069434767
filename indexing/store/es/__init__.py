"""The Elasticsearch store (``store``): corpusqa's store contract over an Elasticsearch index."""

from .store import ElasticsearchStore

__all__ = ["ElasticsearchStore"]
