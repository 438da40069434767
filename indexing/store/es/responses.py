"""What the Elasticsearch store reads from Elasticsearch's answers, as plain functions of the response
dictionaries (so that tests can give them answers of the shapes Elasticsearch sends): index stats, which
Elasticsearch keys by the concrete index names an alias stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def primary_bytes(stats: Mapping[str, Any]) -> int:
    """The primary shards' size on disk in an indices stats response (``metric="store"``) for one name: the
    sum over the concrete indexes it is keyed by (an alias's, one or more; an index's own name otherwise)."""
    return sum(entry["primaries"]["store"]["size_in_bytes"] for entry in stats["indices"].values())
