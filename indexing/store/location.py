"""Which store a `--store` value names: the one place that maps locations to store implementations.

A folder path is the embedded store; `es://HOST[:PORT]/INDEX` names an Elasticsearch index, the second
implementation of the same interface, which plugs in here when it exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from haystack.core.serialization import generate_qualified_class_name

from . import EmbeddedDocumentStore

ELASTICSEARCH_PORT = 9200
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(location: str | Path) -> Any:
    """The store at ``location``, opened (the embedded store's folder is created if missing)."""
    store_class, parameters = _locate(location)
    return store_class(**parameters)


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
    scheme = _SCHEME.match(str(location))
    if scheme.group(1).lower() != "es":
        raise ValueError(f"store {location}: unknown scheme {scheme.group(1)!r}; give a folder or es://HOST:PORT/INDEX")
    host, port, index = _elasticsearch(str(location))
    raise ValueError(
        f"store {location}: the Elasticsearch store (index {index!r} at {host}:{port}) is not available yet; "
        "give a folder for the embedded store"
    )


def _elasticsearch(location: str) -> tuple[str, int, str]:
    """(host, port, index) of ``es://HOST[:PORT]/INDEX``."""
    usage = f"store {location}: an Elasticsearch store is es://HOST[:PORT]/INDEX"
    parts = urlsplit(location)
    try:
        port = parts.port or ELASTICSEARCH_PORT
    except ValueError:
        raise ValueError(f"{usage}; {parts.netloc!r} has no valid port") from None
    index = parts.path.strip("/")
    if not parts.hostname or not index or "/" in index or parts.query or parts.fragment:
        raise ValueError(usage)
    return parts.hostname, port, index
