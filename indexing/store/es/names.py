"""Elasticsearch's rules for index names, checked here so that a name it would refuse is one line from
corpusqa before any request is sent, rather than an error after a connection was made.

The rules (Elasticsearch 8, "Create index" API): lowercase only; none of ``\\ / * ? " < > | , #``, a space
or ``:``; not starting with ``-``, ``_`` or ``+``; not ``.`` or ``..``; at most 255 bytes. Names starting
with ``.`` are refused too: Elasticsearch keeps them for hidden and system indices. The store adds a
companion index (``INDEX-files``, see ``FILES_SUFFIX``) whose name must pass as well.
"""

from __future__ import annotations

#: The companion index of file records and roots: ``<index><FILES_SUFFIX>``.
FILES_SUFFIX = "-files"
_FORBIDDEN = set('\\/*?"<>|,# :')
_MAX_BYTES = 255


def index_name_problem(name: str) -> str | None:
    """Why Elasticsearch would refuse ``name`` as the store's index (or its companion), None when it would not."""
    if not name:
        return "the index name is empty"
    if name != name.lower():
        return f"index names are lowercase ({name!r} is not)"
    forbidden = sorted({character for character in name if character in _FORBIDDEN})
    if forbidden:
        return f"index names cannot hold {' '.join(repr(c) for c in forbidden)} ({name!r} does)"
    if name[0] in "-_+.":
        return f"index names cannot start with {name[0]!r}"
    if len((name + FILES_SUFFIX).encode("utf-8")) > _MAX_BYTES:
        return f"index names are at most {_MAX_BYTES - len(FILES_SUFFIX)} bytes here (the store adds {FILES_SUFFIX!r})"
    return None
