"""What the Elasticsearch store reads from Elasticsearch's answers, as plain functions of the response
dictionaries (so that tests can give them answers of the shapes Elasticsearch sends): bulk results item by
item, and index stats, which Elasticsearch keys by the concrete index names an alias stands for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Characters of Elasticsearch's reason kept in a message (a parse error quotes the field's value).
REASON_CHARACTERS = 300


@dataclass(frozen=True)
class BulkOutcome:
    """What became of each action of a bulk write. ``refused``: document id -> Elasticsearch's reason, for
    each action that failed (in the order sent); ``created``: the ids whose write made a new document (not
    one that overwrote a document already there)."""

    refused: dict[str, str] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)


def bulk_outcome(items: Iterable[Mapping[str, Any]], ignore_status: Collection[int] = ()) -> BulkOutcome:
    """``items`` as a bulk response lists them, one ``{operation: result}`` per action (``result`` with
    ``_id``, ``status``, and ``result`` or ``error``). An action fails when its status is not 2xx, unless
    ``ignore_status`` lists it (404 for deleting what is gone)."""
    outcome = BulkOutcome()
    for item in items:
        [(operation, result)] = item.items()
        status = result.get("status", 500)
        if 200 <= status < 300:
            if result.get("result") == "created":
                outcome.created.add(str(result.get("_id")))
        elif status not in ignore_status:
            outcome.refused[str(result.get("_id"))] = reason(result.get("error", f"{operation} answered {status}"))
    return outcome


def reason(error: Any) -> str:
    """Elasticsearch's error of one action in one line: ``type: reason``, its first line, shortened."""
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason') or error}"
    else:
        text = str(error)
    line = (text.splitlines() or [""])[0]
    return line if len(line) <= REASON_CHARACTERS else line[: REASON_CHARACTERS - 1] + "…"


def refused_files(owners: Mapping[str, str], outcome: BulkOutcome) -> dict[str, str]:
    """Per file whose passages were refused (``owners``: passage id -> file path), why, in one line naming
    the first passage refused; files in the order their first refusal came."""
    found: dict[str, list[tuple[str, str]]] = {}
    for passage_id, why in outcome.refused.items():
        found.setdefault(owners.get(passage_id, "(no file)"), []).append((passage_id, why))
    lines = {}
    for path, refusals in found.items():
        passage_id, why = refusals[0]
        more = f" (and {len(refusals) - 1:,} more of its passages)" if len(refusals) > 1 else ""
        lines[path] = f"Elasticsearch refused passage {passage_id}: {why}{more}"
    return lines


def primary_bytes(stats: Mapping[str, Any]) -> int:
    """The primary shards' size on disk in an indices stats response (``metric="store"``) for one name: the
    sum over the concrete indexes it is keyed by (an alias's, one or more; an index's own name otherwise)."""
    return sum(entry["primaries"]["store"]["size_in_bytes"] for entry in stats["indices"].values())
