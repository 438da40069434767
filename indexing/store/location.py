"""Which store a `--store` value names: the one place that maps locations to store implementations.

A folder path is the embedded store; `es://HOST[:PORT]/INDEX` (`ess://` or `https://` for TLS) is an
Elasticsearch index (see ``es.endpoint``). Both keep the store contract (``contract.CorpusStore``).

Only writers make a store that is not there yet (`corpusqa index`, the target of `store copy`, `eval open`
indexing its corpus); readers (`ask`, `stats`, `store check`, the search page...) open with
``create=False``, and a store not made yet is one line saying so, nothing created.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from haystack.core.serialization import generate_qualified_class_name

from .contract import CorpusStore, StoreError
from .embedded import EmbeddedDocumentStore
from .es.endpoint import SCHEMES, Endpoint, redacted

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(location: str | Path, *, create: bool = True) -> CorpusStore:
    """The store at ``location``, opened. ``create``: whether a store not made yet is made (the embedded
    store's folder, an Elasticsearch index and its companion); when False, such a store is a ``StoreError``
    naming it and how to make one, and nothing is created."""
    store_class, parameters = _locate(location)
    if store_class is EmbeddedDocumentStore:
        if not create and not Path(location).is_dir():
            raise StoreError(no_store(location))
        return store_class(**parameters)
    return store_class(**parameters, create=create)


def no_store(location: str | Path) -> str:
    """The line for a store folder not made yet."""
    return f"no store at {location}: index documents first (corpusqa index PATH --store {location})"


def is_folder(location: str | Path) -> bool:
    """Whether ``location`` names a folder (the embedded store) rather than a store URL."""
    return _SCHEME.match(str(location)) is None


def store_config(location: str | Path) -> dict[str, Any]:
    """The store at ``location`` as Haystack serializes one, without opening it: what a pipeline YAML holds."""
    store_class, parameters = _locate(location)
    return {"type": generate_qualified_class_name(store_class), "init_parameters": parameters}


def _locate(location: str | Path) -> tuple[type, dict[str, Any]]:
    """The store class and its init parameters for ``location``; ValueError for a location no store serves."""
    if is_folder(location):
        return EmbeddedDocumentStore, {"path": str(location)}
    scheme = _SCHEME.match(str(location)).group(1)
    if scheme.lower() not in SCHEMES:
        raise ValueError(f"store {redacted(str(location))}: unknown scheme {scheme!r}; give a folder or "
                         "es://HOST[:PORT]/INDEX")
    endpoint = Endpoint.parse(str(location))
    from .es.store import ElasticsearchStore  # loads the Elasticsearch client: only for such a store

    return ElasticsearchStore, {"url": endpoint.location}
