"""Specifications of the BM25 index's delta: passages added after the bm25s build are scored by hand with
the build's statistics, exactly as bm25s would have scored them, and removed ones stop matching."""

from __future__ import annotations

import numpy as np
import pytest
from corpusqa.indexing.store.keyword import DELTA_SHARE, KeywordIndex, words

TEXTS = [
    "The Eiffel Tower stands in Paris, the capital of France.",
    "Paris hosted the Summer Olympics in 1900, 1924 and 2024.",
    "The Berlin television tower is the tallest structure in Germany.",
    "Rome has many old churches and a tower or two.",
    "Tower Bridge crosses the Thames in London, near the Tower of London.",
]


def built(texts: list[str]) -> KeywordIndex:
    rows = np.arange(1, len(texts) + 1, dtype=np.int64)
    return KeywordIndex.build(rows, texts, through=len(texts))


def test_hand_weights_are_the_weights_bm25s_stored_for_a_built_passage():
    index = built(TEXTS)
    for position, text in enumerate(TEXTS):
        for word, weight in index.weights(words(text)).items():
            stored = index.retriever.get_scores_from_ids([index.retriever.vocab_dict[word]])[position]
            assert weight == pytest.approx(stored, rel=1e-6), (text, word)


def test_a_passage_added_to_the_delta_scores_as_its_twin_in_the_base():
    """Same statistics, same words: a delta passage equal to a base passage gets that passage's score,
    for every query, repeated query words included."""
    index = built(TEXTS)
    index.update(np.zeros(0, dtype=np.int64), np.array([10]), [TEXTS[4]])
    for query in ["tower London", "Tower tower Thames bridge", "London"]:
        scores = dict(index.search(query, top_k=10, allowed=None))
        assert scores[10] == pytest.approx(scores[5], rel=1e-6), query


def test_removed_passages_stop_matching_in_base_and_delta_and_filters_apply_to_both():
    index = built(TEXTS)
    index.update(np.zeros(0, dtype=np.int64), np.array([10, 11]), ["A tower in Lyon.", "Lyon by night."])
    index.update(np.array([2, 11]), np.zeros(0, dtype=np.int64), [])
    assert [row for row, _ in index.search("Paris Lyon", top_k=10, allowed=None)] == [10, 1]
    assert [row for row, _ in index.search("tower", top_k=10, allowed=np.array([3, 10, 11]))] == [10, 3]
    assert index.size == len(TEXTS) - 1 + 1


def test_a_word_only_the_delta_knows_is_found():
    index = built(TEXTS)
    index.update(np.zeros(0, dtype=np.int64), np.array([10]), ["Zanzibar has a fort."])
    assert [row for row, _ in index.search("Zanzibar", top_k=3, allowed=None)] == [10]


def test_the_delta_is_bounded_by_its_share_of_the_base():
    index = built(TEXTS * 40)  # 200 passages: the delta may hold 10
    allowed = int(DELTA_SHARE * 200)
    assert index.absorbs(np.zeros(0, dtype=np.int64), allowed)
    assert not index.absorbs(np.zeros(0, dtype=np.int64), allowed + 1)
    assert not index.absorbs(np.arange(1, allowed + 2), 0), "tombstones count too"
    assert not built([""]).absorbs(np.zeros(0, dtype=np.int64), 1), "an index with no tokens rebuilds"


def test_save_and_load_keep_base_tombstones_and_delta(tmp_path):
    index = built(TEXTS)
    index.update(np.array([1]), np.array([10]), ["A tower in Lyon."])
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    for query in ["tower", "Lyon Paris", "Eiffel"]:
        assert loaded.search(query, 10, None) == index.search(query, 10, None)
    assert (loaded.size, loaded.through) == (index.size, index.through)
