"""The BM25 index: bm25s over the passages' content, rebuilt from SQLite per committed batch (bm25s
indexes are not updatable: idf and the average length change with every passage).

Tokens: bm25s's tokenizer, lower-cased, English stopwords removed, no stemming (PyStemmer is not a
dependency; exact word forms also keep names and numbers, which QA questions lean on, intact).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from .rows import best, positions_mask


def words(text: str) -> list[str]:
    return bm25s.tokenize(text, stopwords="en", return_ids=False, show_progress=False)[0]


class KeywordIndex:
    """BM25 scores by position; ``rows[position]`` is the SQLite row the position stands for."""

    def __init__(self, retriever: bm25s.BM25 | None, rows: np.ndarray):
        self.retriever = retriever  # None when no passage has a single token
        self.rows = rows

    @classmethod
    def build(cls, rows: np.ndarray, texts: Sequence[str]) -> KeywordIndex:
        tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)  # ids and their vocabulary
        if not tokens.vocab:
            return cls(None, rows)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, rows)

    def search(self, query: str, top_k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """(row, score) of the best ``top_k`` passages sharing a token with ``query`` and, when given,
        whose rows are in ``allowed``; best first."""
        if self.retriever is None:
            return []
        vocabulary = self.retriever.vocab_dict
        token_ids = [vocabulary[word] for word in words(query) if word in vocabulary]
        if not token_ids:
            return []
        scores = self.retriever.get_scores_from_ids(token_ids)
        keep = scores > 0
        if allowed is not None:
            keep &= positions_mask(self.rows, allowed)
        return best(self.rows[keep], scores[keep], top_k)

    def save(self, folder: Path) -> None:
        np.save(folder / "rows.npy", self.rows)
        if self.retriever is not None:
            self.retriever.save(folder, show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        rows = np.load(folder / "rows.npy")
        if not (folder / "params.index.json").exists():
            return cls(None, rows)
        retriever = bm25s.BM25.load(folder, show_progress=False)
        if retriever.scores["num_docs"] != len(rows):
            raise ValueError(f"BM25 index in {folder} covers {retriever.scores['num_docs']} passages, not {len(rows)}")
        return cls(retriever, rows)
