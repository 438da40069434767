"""What every face that queries a store (`corpusqa ask`, `eval open`, the search page, the HTTP API) decides the
same way, here once: which retrievers a store can answer with, and the one line shown for a store that cannot
answer at all.

A store indexed with ``--no-embed`` holds no embeddings: dense and hybrid retrieval cannot run on it. Asked for
by name they are refused (``NoEmbeddings``); by default it answers with BM25, and the caller is told why
(``RetrieverChoice.note``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpusqa.indexing.store.contract import CorpusStore, StoreError

BM25 = "bm25"


class NoEmbeddings(ValueError):
    """Dense or hybrid retrieval asked for by name, of a store without embeddings."""


@dataclass(frozen=True)
class RetrieverChoice:
    """The retrievers to answer with; ``reason``, when they are not the ones a caller would get by default
    (a store without embeddings answers with BM25), says why."""

    retrievers: tuple[str, ...]
    reason: str | None = None

    @property
    def retriever(self) -> str:
        """The one retriever, for a face that asks with one."""
        return self.retrievers[0]

    @property
    def note(self) -> str | None:
        """What to tell the person asking (None: nothing to tell)."""
        return None if self.reason is None else f"{self.reason}: answering with BM25"


def choose_retrievers(
    store: CorpusStore,
    location: str | Path,
    asked: Sequence[str] | None = None,
    default: Sequence[str] = ("hybrid",),
    use_bm25: str = "--retriever bm25",
) -> RetrieverChoice:
    """The retrievers ``store`` (opened from ``location``, which messages name) answers with: those ``asked``
    for by name, else ``default``. On a store without embeddings, a default is narrowed to BM25 with a
    reason, and dense or hybrid asked for by name raise ``NoEmbeddings`` (``use_bm25`` says how to ask for
    BM25 in the caller's terms: a flag, a request field)."""
    wanted = tuple(asked) if asked else tuple(default)
    if all(name == BM25 for name in wanted) or store.has_embeddings():
        return RetrieverChoice(wanted)
    reason = f"the store at {location} has no embeddings (indexed with --no-embed)"
    if asked:
        refused = ", ".join(name for name in wanted if name != BM25)
        raise NoEmbeddings(f"{reason}, which {refused} retrieval needs: ask with {use_bm25}, or index again "
                           "without --no-embed")  # fmt: skip
    return RetrieverChoice((BM25,), reason)


def store_problem(location: str | Path, error: BaseException) -> str | None:
    """The one line naming the store at ``location`` and what to do, when ``error`` is the store's (a
    ``StoreError``, or an SQLite error, also when Haystack wrapped it in a PipelineRuntimeError); None when
    it is not."""
    from corpusqa.indexing.store.database import explained

    for cause in _causes(error):
        if isinstance(cause, StoreError):
            return str(cause)
        if isinstance(cause, sqlite3.Error):
            return str(explained(location, cause))
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or during, each once."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
