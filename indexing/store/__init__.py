"""corpusqa's stores: the contract they keep (``contract``), the embedded store (``embedded``: a folder, no
server) and the Elasticsearch store (``es``); ``location`` opens the one a ``--store`` value names."""

from .contract import CorpusStore, FileRecord, Finding, RefusedFiles, SearchStore, StoreError, StoreStats
from .embedded import EmbeddedDocumentStore

__all__ = [
    "CorpusStore", "EmbeddedDocumentStore", "FileRecord", "Finding", "RefusedFiles", "SearchStore", "StoreError",
    "StoreStats",
]
