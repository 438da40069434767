"""The store's stats as people read them (`corpusqa stats`): counts with thousands separators, local dates,
sizes in KB/MB/GB. `stats --json` prints the raw numbers instead."""

from __future__ import annotations

from datetime import datetime
from typing import Any

_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def count(number: int | None) -> str:
    return "none" if number is None else f"{number:,}"


def size(number: int) -> str:
    """Bytes in the largest unit that keeps the number at least 1 (1 KB = 1,024 bytes)."""
    value, unit = float(number), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{number:,} bytes" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def local_time(timestamp: float | None) -> str:
    return "never" if timestamp is None else datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def stats_lines(location: str, stats: dict[str, Any]) -> list[str]:
    """What the store at ``location`` holds: passages, files and documents, per file type, when it was last
    indexed, its indexes and its size on disk; any field not named here is shown as it is."""
    shown = dict(stats)
    lines = [f"Store:          {location}"]
    lines.append(
        f"Passages:       {count(shown.pop('passages'))} from {count(shown.pop('files'))} files "
        f"({count(shown.pop('documents'))} documents)"
    )
    for kind, found in shown.pop("file_types").items():
        lines.append(f"  {kind or 'unknown':<12}  {count(found['files'])} files, {count(found['passages'])} passages")
    lines.append(f"Last indexed:   {local_time(shown.pop('last_indexed_at'))}")
    lines.append(f"BM25 index:     {count(shown.pop('bm25_passages'))} passages")
    dense, kind, dim = shown.pop("dense_passages"), shown.pop("dense_index"), shown.pop("embedding_dim")
    if kind is None:
        lines.append("Dense index:    none (indexed without embeddings: BM25 only)")
    else:
        lines.append(f"Dense index:    {count(dense)} passages ({kind}, {dim}-d embeddings)")
    disk = shown.pop("disk_bytes")
    parts = ", ".join(f"{name} {size(value)}" for name, value in disk.items())
    lines.append(f"On disk:        {size(sum(disk.values()))} ({parts})")
    lines += [f"{key.replace('_', ' ').capitalize() + ':':<16}{value}" for key, value in shown.items()]
    return lines
