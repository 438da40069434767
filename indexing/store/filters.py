"""Haystack 3 filters, evaluated in Python with Haystack's own ``document_matches_filter`` so the
semantics (None handling, ISO dates, errors) are exactly Haystack's, plus one extension: ``prefix``.

``{"field": "meta.file_path", "operator": "prefix", "value": "/docs/manuals/"}`` matches string
values that start with ``value``: restricting a search to a folder, which ``in`` over every file path
of the folder would make slow (Haystack evaluates ``in`` by comparing with each listed value).
"""

from __future__ import annotations

from typing import Any

from haystack.dataclasses import Document
from haystack.errors import FilterError
from haystack.utils.filters import COMPARISON_OPERATORS, LOGICAL_OPERATORS, document_matches_filter

PREFIX = "prefix"

#: Document fields other than ``id`` and ``meta``: filters on them need the whole stored document.
_BODY_FIELDS = {"content", "embedding", "sparse_embedding", "blob", "score"}


def validate(filters: dict[str, Any]) -> None:
    """Raise ``FilterError`` for a malformed filter, whether or not any document is there to test it on."""
    if not isinstance(filters, dict):
        raise FilterError(f"A filter must be a dict, got {type(filters).__name__}")
    if "field" in filters:
        missing = {"operator", "value"} - filters.keys()
        if missing:
            raise FilterError(f"{sorted(missing)} missing in {filters}")
        operator = filters["operator"]
        if operator not in COMPARISON_OPERATORS and operator != PREFIX:
            raise FilterError(f"Unknown comparison operator '{operator}' in {filters}")
        if operator in ("in", "not in") and not isinstance(filters["value"], list):
            raise FilterError(f"'{operator}' needs a list value, got {filters['value']!r}")
        if operator == PREFIX and not isinstance(filters["value"], str):
            raise FilterError(f"'prefix' needs a string value, got {filters['value']!r}")
        return
    if filters.get("operator") not in LOGICAL_OPERATORS or not isinstance(filters.get("conditions"), list):
        raise FilterError(f"A logical filter needs an operator in {sorted(LOGICAL_OPERATORS)} and conditions: "
                          f"{filters}")
    for condition in filters["conditions"]:
        validate(condition)


def needs_body(filters: dict[str, Any]) -> bool:
    """Whether the filter looks at more than a document's id and meta."""
    if "field" in filters:
        return filters["field"].split(".")[0] in _BODY_FIELDS
    return any(needs_body(condition) for condition in filters["conditions"])


def matches(filters: dict[str, Any], document: Document) -> bool:
    """Whether ``document`` passes a validated filter."""
    if "field" not in filters:
        results = (matches(condition, document) for condition in filters["conditions"])
        operator = filters["operator"]
        return all(results) if operator == "AND" else any(results) if operator == "OR" else not all(results)
    if filters["operator"] == PREFIX:
        value = _field_value(document, filters["field"])
        return isinstance(value, str) and value.startswith(filters["value"])
    return document_matches_filter(filters, document)


def _field_value(document: Document, field: str) -> Any:
    parts = field.split(".")
    if len(parts) == 1:
        return getattr(document, field) if field in ("id", "content") else document.meta.get(field)
    value: Any = getattr(document, parts[0], None)
    for part in parts[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
