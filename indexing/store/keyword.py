"""The BM25 index: a base built by bm25s, plus a delta of the passages added since, scored by hand.

bm25s indexes cannot be updated (its scores fold in the idf and the average length of the corpus it
was built on), and rebuilding one costs ~65 us per passage: ~65 s at a million passages, too much for
re-indexing one changed file. So passages added after the build go to a small delta, scored with the
base's statistics (``score``: Lucene's BM25, bm25s's default), and removed ones become tombstones.
Both are exact for the frozen statistics; only the statistics drift, so once tombstones and delta
together pass ``DELTA_SHARE`` of the base, ``absorbs`` says no and the store rebuilds the index.

Tokens: bm25s's tokenizer, lower-cased, English stopwords removed, no stemming (PyStemmer is not a
dependency; exact word forms also keep names and numbers, which QA questions lean on, intact).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import bm25s
import numpy as np

from .rows import best, positions_mask

#: Passages added or removed since the build, as a share of the base, past which the index is rebuilt.
#: At 5% an idf moves by at most log(1.05) ~ 0.05 nats; a rebuild every 5% costs ~1.3 ms per changed
#: passage, a few percent of embedding it on a CPU.
DELTA_SHARE = 0.05


def words(text: str) -> list[str]:
    return bm25s.tokenize(text, stopwords="en", return_ids=False, show_progress=False)[0]


class KeywordIndex:
    """BM25 scores by position; ``rows[position]`` is the SQLite row the position stands for.

    ``through``: the last SQLite row that existed when the index was last brought up to date (rows above
    it are new to the index)."""

    def __init__(self, retriever: bm25s.BM25 | None, rows: np.ndarray, average_length: float, through: int):
        self.retriever = retriever  # None when no passage has a single token
        self.rows = rows
        self.deleted = np.zeros(len(rows), dtype=bool)
        self.average_length = average_length
        self.through = through
        self.delta = _Delta()

    @classmethod
    def build(cls, rows: np.ndarray, texts: Sequence[str], through: int) -> KeywordIndex:
        tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)  # ids and their vocabulary
        if not tokens.vocab:
            return cls(None, rows, 0.0, through)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        average_length = float(np.mean([len(ids) for ids in tokens.ids]))  # as bm25s computes it
        return cls(retriever, rows, average_length, through)

    @property
    def size(self) -> int:
        """Live passages."""
        return int(len(self.rows) - self.deleted.sum() + len(self.delta.rows) - self.delta.deleted.sum())

    def absorbs(self, removed: np.ndarray, added: int) -> bool:
        """Whether ``update`` may take this change, or the index should be rebuilt instead (it has no base,
        or the change would carry tombstones and delta past ``DELTA_SHARE`` of it)."""
        if self.retriever is None:
            return not added and not positions_mask(self.rows, removed).any()
        drift = self.deleted.sum() + len(self.delta.rows) + added
        return drift + positions_mask(self.rows, removed).sum() <= DELTA_SHARE * len(self.rows)

    def update(self, removed: np.ndarray, added: np.ndarray, texts: Sequence[str]) -> None:
        """Apply a committed change that ``absorbs``: rows removed, and rows added (above all current ones)."""
        self.deleted |= positions_mask(self.rows, removed)
        self.delta.deleted |= positions_mask(self.delta.rows, removed)
        if len(added):
            self.delta.add(added, [words(text) for text in texts], self.weights)

    def search(self, query: str, top_k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """(row, score) of the best ``top_k`` passages sharing a token with ``query`` and, when given,
        whose rows are in ``allowed``; best first."""
        if self.retriever is None:
            return []
        tokens = words(query)
        vocabulary = self.retriever.vocab_dict
        token_ids = [vocabulary[word] for word in tokens if word in vocabulary]
        rows, scores = [], []
        for part_rows, deleted, part_scores in (
            (self.rows, self.deleted, self.retriever.get_scores_from_ids(token_ids) if token_ids else None),
            (self.delta.rows, self.delta.deleted, self.delta.scores(tokens)),
        ):
            if part_scores is None:
                continue
            keep = (part_scores > 0) & ~deleted
            if allowed is not None:
                keep &= positions_mask(part_rows, allowed)
            rows.append(part_rows[keep])
            scores.append(part_scores[keep])
        if not rows:
            return []
        return best(np.concatenate(rows), np.concatenate(scores), top_k)  # delta rows are above base rows

    def weights(self, tokens: Sequence[str]) -> dict[str, float]:
        """Each distinct token's BM25 weight in a passage of these tokens, with the base's statistics:
        idf * tf / (tf + k1 * (1 - b + b * length / average length)), Lucene's idf
        log(1 + (N - df + 0.5) / (df + 0.5)), df 0 for words the base has not seen. For a passage of the
        base, these are the weights bm25s stored for it."""
        retriever = self.retriever
        n, k1, b = retriever.scores["num_docs"], retriever.k1, retriever.b
        norm = k1 * (1 - b + b * len(tokens) / self.average_length)
        found = {}
        for word, tf in Counter(tokens).items():
            token_id = retriever.vocab_dict.get(word)
            df = 0 if token_id is None else self._frequencies[token_id]
            found[word] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + norm))
        return found

    @cached_property
    def _frequencies(self) -> np.ndarray:
        """Per token id, the base passages holding it (a column of bm25s's score matrix)."""
        return np.diff(self.retriever.scores["indptr"])

    def save(self, folder: Path) -> None:
        np.save(folder / "rows.npy", self.rows)
        np.save(folder / "deleted.npy", self.deleted)
        self.delta.save(folder)
        state = {"average_length": self.average_length, "through": self.through}
        (folder / "state.json").write_text(json.dumps(state))
        if self.retriever is not None:
            self.retriever.save(folder, show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        rows = np.load(folder / "rows.npy")
        state = json.loads((folder / "state.json").read_text())
        retriever = None
        if (folder / "params.index.json").exists():
            retriever = bm25s.BM25.load(folder, show_progress=False)
            if retriever.scores["num_docs"] != len(rows):
                raise ValueError(f"BM25 index in {folder} covers {retriever.scores['num_docs']} passages, not {len(rows)}")
        index = cls(retriever, rows, state["average_length"], state["through"])
        index.deleted = np.load(folder / "deleted.npy")
        index.delta = _Delta.load(folder)
        if len(index.deleted) != len(rows):
            raise ValueError(f"BM25 index in {folder} does not match its row list")
        return index


class _Delta:
    """Passages added since the build, as postings: per word, the delta positions holding it and their
    weights, sorted by word so that a word's postings are one slice."""

    def __init__(self):
        self.rows = np.zeros(0, dtype=np.int64)
        self.deleted = np.zeros(0, dtype=bool)
        self.vocabulary: dict[str, int] = {}
        self.words = np.zeros(0, dtype=np.int64)  # per posting: its word's id in ``vocabulary``
        self.positions = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros(0, dtype=np.float32)

    def add(self, rows: np.ndarray, passages: list[list[str]], weigh: Callable[[list[str]], dict[str, float]]) -> None:
        words, positions, weights = [], [], []
        for position, tokens in enumerate(passages, start=len(self.rows)):
            for word, weight in weigh(tokens).items():
                words.append(self.vocabulary.setdefault(word, len(self.vocabulary)))
                positions.append(position)
                weights.append(weight)
        self.rows = np.concatenate([self.rows, rows])
        self.deleted = np.concatenate([self.deleted, np.zeros(len(rows), dtype=bool)])
        self.words = np.concatenate([self.words, words]).astype(np.int64)
        order = np.argsort(self.words, kind="stable")
        self.words = self.words[order]
        self.positions = np.concatenate([self.positions, positions]).astype(np.int64)[order]
        self.weights = np.concatenate([self.weights, weights]).astype(np.float32)[order]

    def scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """Per delta position, the sum of the weights of ``tokens`` (repeats counted, as bm25s counts them);
        None when the delta holds none of them."""
        ids = [self.vocabulary[word] for word in tokens if word in self.vocabulary]
        if not ids:
            return None
        starts, ends = np.searchsorted(self.words, ids, "left"), np.searchsorted(self.words, ids, "right")
        hits = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
        return np.bincount(self.positions[hits], weights=self.weights[hits], minlength=len(self.rows)).astype(np.float32)

    def save(self, folder: Path) -> None:
        np.savez(folder / "delta.npz", rows=self.rows, deleted=self.deleted, words=self.words,
                 positions=self.positions, weights=self.weights)
        (folder / "delta.json").write_text(json.dumps(list(self.vocabulary), ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> _Delta:
        delta = cls()
        with np.load(folder / "delta.npz") as saved:
            for name in ("rows", "deleted", "words", "positions", "weights"):
                setattr(delta, name, saved[name])
        delta.vocabulary = {word: i for i, word in enumerate(json.loads((folder / "delta.json").read_text()))}
        return delta
