"""Passages, file records and a three-file corpus that the store tests (the contract's and the embedded
store's own) share."""

from __future__ import annotations

import numpy as np
from corpusqa.indexing.store import FileRecord
from haystack import Document

DIM = 8


def unit(i: int, dim: int = DIM) -> list[float]:
    return np.eye(dim, dtype=np.float32)[i].tolist()


def passage(path: str, text: str, vector: int | None = None, **meta) -> Document:
    file_type = path.rsplit(".", 1)[-1]
    return Document(content=text, meta={"file_path": path, "file_type": file_type, **meta},
                    embedding=None if vector is None else unit(vector))


def record(path: str, content_hash: str = "h") -> FileRecord:
    return FileRecord(path=path, content_hash=content_hash, size=10, mtime=1.0)


def contents(documents: list[Document]) -> list[str]:
    return [d.content for d in documents]


def fill_corpus(store) -> None:
    """Three files: a.txt (two passages), b.pdf, c.md; every passage on its own unit vector."""
    store.replace_files([
        (record("docs/a.txt"), [passage("docs/a.txt", "The Eiffel Tower stands in Paris.", 0),
                                passage("docs/a.txt", "Paris is the capital of France.", 1)]),
        (record("docs/b.pdf"), [passage("docs/b.pdf", "The Berlin television tower is tall.", 2, page_number=3)]),
        (record("notes/c.md"), [passage("notes/c.md", "Rome has many old churches.", 3)]),
    ])
