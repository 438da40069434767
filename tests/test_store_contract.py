"""The store contract (corpusqa.indexing.store.contract), specified once and run on every store: the embedded
store always; the Elasticsearch store whenever $CORPUSQA_TEST_ES_URL names a server that answers (its
credentials, if it wants any, in $CORPUSQA_ES_API_KEY or $CORPUSQA_ES_USER and $CORPUSQA_ES_PASSWORD).
Without one those tests skip, saying why: nothing here stands in for a real Elasticsearch.

Each Elasticsearch test works in an index of its own (corpusqa-test-<random>), deleted afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace

import numpy as np
import pytest
from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store import CorpusStore, EmbeddedDocumentStore, StoreError
from corpusqa.indexing.store.copy import copy_store
from haystack import Document
from haystack.dataclasses import ByteStream
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    CountDocumentsTest,
    DeleteDocumentsTest,
    FilterDocumentsTest,
    WriteDocumentsTest,
    create_filterable_docs,
)
from store_samples import DIM, contents, fill_corpus, passage, record, unit

ES_URL = os.environ.get("CORPUSQA_TEST_ES_URL")


def _elasticsearch_unavailable() -> str | None:
    """Why the Elasticsearch store cannot be tested here, None when it can."""
    if not ES_URL:
        return "CORPUSQA_TEST_ES_URL is not set: no Elasticsearch server to run the store contract on"
    from corpusqa.indexing.store.es.endpoint import Endpoint, client_options
    from elasticsearch import Elasticsearch

    try:
        endpoint = Endpoint.parse(ES_URL.rstrip("/") + "/probe")
        with Elasticsearch(**{**client_options(endpoint, os.environ), "request_timeout": 5, "max_retries": 0}) as client:
            client.info()
    except Exception as error:  # any reason the server cannot be used is a reason to skip, given
        return f"CORPUSQA_TEST_ES_URL={ES_URL} cannot be used: {type(error).__name__}: {str(error)[:200]}"
    return None


_ES_SKIP = _elasticsearch_unavailable()


class StoreKind:
    """Opens stores of one kind, each test's own, and opens them again (a new process's view)."""

    def __init__(self, name: str, tmp_path):
        self.name, self.tmp_path, self.opened = name, tmp_path, []

    def open(self, which: str = "store", embedding_dim: int | None = None) -> CorpusStore:
        if self.name == "embedded":
            store = EmbeddedDocumentStore(self.tmp_path / which, embedding_dim=embedding_dim)
        else:
            from corpusqa.indexing.store.es import ElasticsearchStore

            store = ElasticsearchStore(f"{ES_URL.rstrip('/')}/{self.index(which)}", embedding_dim=embedding_dim,
                                       create=True)
        self.opened.append(store)
        return store

    def index(self, which: str) -> str:
        return f"corpusqa-test-{self.tmp_path.name[-8:].lower()}-{which}".replace("_", "-")

    def close(self) -> None:
        for store in self.opened:
            if self.name == "elasticsearch":
                store._client.options(ignore_status=404).indices.delete(index=f"{store.index},{store.files_index}")
            store.close()


@pytest.fixture(params=["embedded", pytest.param("elasticsearch", marks=pytest.mark.skipif(_ES_SKIP is not None,
                                                                                            reason=_ES_SKIP or ""))])
def kind(request, tmp_path):
    found = StoreKind(request.param, tmp_path / uuid.uuid4().hex[:8])
    yield found
    found.close()


@pytest.fixture
def store(kind):
    return kind.open()


@pytest.fixture
def corpus(store):
    fill_corpus(store)
    return store


def as_stored(documents: list[Document]) -> list[Document]:
    """Documents as a store gives them back: by id, embeddings as float32, no score."""
    def stored(document):
        embedding = document.embedding and np.asarray(document.embedding, dtype=np.float32).tolist()
        return replace(document, embedding=embedding, score=None)

    return sorted((stored(d) for d in documents), key=lambda d: d.id)


class TestHaystackDocumentStoreSuite(CountDocumentsTest, DeleteDocumentsTest, FilterDocumentsTest, WriteDocumentsTest):
    """Haystack's own specification of a DocumentStore, run unchanged but for two things the contract leaves
    open: the order documents are listed in, and zero vectors (cosine similarity cannot compare them, and
    Elasticsearch refuses them; corpusqa's embedder writes unit vectors)."""

    @pytest.fixture
    def document_store(self, store):
        return store

    @pytest.fixture
    def filterable_docs(self):
        return [d for d in create_filterable_docs() if d.embedding is None or any(d.embedding)]

    @staticmethod
    def assert_documents_are_equal(received, expected):
        assert as_stored(received) == as_stored(expected)

    def test_write_documents(self, document_store):
        """The default policy is FAIL."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


def test_every_store_keeps_the_whole_contract(store):
    assert isinstance(store, CorpusStore)


# -- writing -------------------------------------------------------------------------------------------


def test_overwritten_documents_are_reindexed(store):
    store.write_documents([Document(id="x", content="apples", embedding=unit(0))])
    store.write_documents([Document(id="x", content="pears", embedding=unit(1))], policy=DuplicatePolicy.OVERWRITE)
    assert store.bm25("apples", top_k=5) == []
    assert contents(store.bm25("pears", top_k=5)) == ["pears"]
    assert [(d.content, round(d.score, 4)) for d in store.dense(unit(1), top_k=1)] == [("pears", 1.0)]


def test_the_embedding_dimension_is_kept_across_opening(kind):
    kind.open("s").write_documents([Document(content="a", embedding=unit(0))])
    with pytest.raises(ValueError, match="8-d"):
        kind.open("s", embedding_dim=384)
    again = kind.open("s")
    with pytest.raises(ValueError, match="embedding"):
        again.write_documents([Document(content="b", embedding=[1.0] * 384)])
    assert contents(again.filter_documents()) == ["a"] and again.stats()["embedding_dim"] == DIM


def test_a_write_with_one_vector_of_another_dimension_writes_nothing(store):
    store.write_documents([Document(content="kept", embedding=unit(0))])
    with pytest.raises(ValueError, match="embedding"):
        store.write_documents([Document(content="new one", embedding=unit(1)), Document(content="bad", embedding=[1.0, 0.0])])
    with pytest.raises(ValueError, match="embedding"):
        store.replace_files([(record("a.txt"), [passage("a.txt", "fine", 1)]),
                             (record("b.txt"), [Document(content="bad", meta={"file_path": "b.txt"}, embedding=[1.0])])])
    assert contents(store.filter_documents()) == ["kept"] and store.files() == []


def test_documents_with_blobs_are_refused(store):
    with pytest.raises(ValueError, match="blob"):
        store.write_documents([Document(blob=ByteStream(b"raw"))])


# -- files ---------------------------------------------------------------------------------------------


def test_replace_files_replaces_a_files_passages_and_leaves_other_files_alone(corpus):
    corpus.replace_files([(record("docs/a.txt", "h2"), [passage("docs/a.txt", "Lyon is in France.", 4)])])
    assert contents(corpus.filter_documents({"field": "meta.file_path", "operator": "==", "value": "docs/a.txt"})) == [
        "Lyon is in France."]
    assert corpus.count_documents() == 3
    assert contents(corpus.bm25("Paris", top_k=5)) == []
    assert contents(corpus.bm25("France", top_k=5)) == ["Lyon is in France."]
    assert contents(corpus.dense(unit(3), top_k=1)) == ["Rome has many old churches."]
    assert corpus.dense(unit(0), top_k=1)[0].score < 0.5  # the Eiffel Tower passage and its vector are gone


def test_file_records_hold_passage_counts_and_index_time(corpus):
    before = time.time()
    corpus.replace_files([(record("docs/b.pdf", "h2"), [passage("docs/b.pdf", "one"), passage("docs/b.pdf", "two")])])
    b = corpus.file_record("docs/b.pdf")
    assert (b.path, b.content_hash, b.size, b.mtime, b.passages) == ("docs/b.pdf", "h2", 10, 1.0, 2)
    assert before <= b.indexed_at <= time.time()
    assert [r.path for r in corpus.files()] == ["docs/a.txt", "docs/b.pdf", "notes/c.md"]
    assert corpus.file_record("docs/missing.txt") is None


def test_replace_files_refuses_passages_of_another_file(corpus):
    with pytest.raises(ValueError, match="file_path"):
        corpus.replace_files([(record("docs/a.txt"), [passage("docs/b.pdf", "misfiled")])])
    assert corpus.count_documents() == 4


def test_remove_files_drops_passages_and_records(corpus):
    assert corpus.remove_files(["docs/a.txt", "notes/c.md", "never/indexed.txt"]) == 3
    assert [r.path for r in corpus.files()] == ["docs/b.pdf"]
    assert contents(corpus.filter_documents()) == ["The Berlin television tower is tall."]
    assert corpus.bm25("Paris", top_k=5) == []
    assert contents(corpus.dense(unit(3), top_k=5)) == ["The Berlin television tower is tall."]


def test_roots_keep_the_outermost_folders_given(store, tmp_path):
    inner, outer, other = tmp_path / "docs" / "inner", tmp_path / "docs", tmp_path / "other"
    store.record_roots([inner])
    store.record_roots([outer, other])
    store.record_roots([inner])
    assert store.roots() == sorted([os.path.realpath(outer), os.path.realpath(other)])


def test_a_second_index_run_skips_unchanged_files_and_prune_removes_deleted_ones(store, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in [("a.txt", "Apples grow on trees."), ("b.md", "Bananas are yellow."), ("c.txt", "Cherries.")]:
        (docs / name).write_text(text, encoding="utf-8")
    first = index_paths([docs], store, embed=False, progress=False)
    assert (first.indexed, first.skipped) == (3, 0)
    (docs / "a.txt").write_text("Apricots are orange.", encoding="utf-8")
    (docs / "c.txt").unlink()
    second = index_paths([docs], store, embed=False, prune=True, progress=False)
    assert (second.indexed, second.skipped, second.removed) == (1, 1, 1)
    assert sorted(r.path for r in store.files()) == [str(docs / "a.txt"), str(docs / "b.md")]
    assert contents(store.bm25("apricots apples cherries", top_k=5)) == ["Apricots are orange."]
    assert store.roots() == [os.path.realpath(docs)]


def test_stats(corpus):
    stats = corpus.stats()
    assert {k: stats[k] for k in ("passages", "documents", "files", "file_types", "embedding_dim",
                                  "bm25_passages", "dense_passages")} == {
        "passages": 4, "documents": 4, "files": 3,
        "file_types": {"md": {"files": 1, "passages": 1}, "pdf": {"files": 1, "passages": 1},
                       "txt": {"files": 1, "passages": 2}},
        "embedding_dim": DIM, "bm25_passages": 4, "dense_passages": 4}
    assert stats["last_indexed_at"] == max(r.indexed_at for r in corpus.files())
    assert stats["dense_index"] is not None and all(size >= 0 for size in stats["disk_bytes"].values())
    assert corpus.has_embeddings()


def test_an_empty_store_has_no_embeddings_and_counts_nothing(store):
    stats = store.stats()
    assert (stats["passages"], stats["files"], stats["embedding_dim"], stats["last_indexed_at"]) == (0, 0, None, None)
    assert not store.has_embeddings()


def test_passages_come_grouped_by_file_with_their_embeddings(corpus):
    corpus.write_documents([Document(content="of no file", embedding=unit(6))])
    batches = list(corpus.passages(batch_size=2))
    assert all(1 <= len(batch) <= 2 for batch in batches)
    found = [d for batch in batches for d in batch]
    assert [d.meta.get("file_path") for d in found] == [None, "docs/a.txt", "docs/a.txt", "docs/b.pdf", "notes/c.md"]
    assert as_stored(found) == as_stored(corpus.filter_documents())
    assert found[0].embedding == unit(6)


# -- retrieval -----------------------------------------------------------------------------------------


def test_bm25_ranks_passages_sharing_words_with_the_query(corpus):
    found = corpus.bm25("Which tower is in Paris?", top_k=5)
    assert contents(found)[0] == "The Eiffel Tower stands in Paris."
    assert set(contents(found)) == {"The Eiffel Tower stands in Paris.", "Paris is the capital of France.",
                                    "The Berlin television tower is tall."}
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert found[0].meta["file_path"] == "docs/a.txt"
    assert len(corpus.bm25("tower Paris", top_k=1)) == 1


def test_bm25_without_a_match_or_documents_is_empty(store):
    assert store.bm25("anything", top_k=5) == []
    store.write_documents([Document(content="the and of"), Document(content="cats")])
    assert store.bm25("dogs", top_k=5) == []
    assert store.bm25("the", top_k=5) == []


def test_filtered_bm25_returns_top_k_when_enough_passages_match(store):
    strong = [passage(f"t{i}.txt", "tower tower tower") for i in range(30)]
    weak = [passage(f"p{i}.pdf", f"a tower among many other words number {i}") for i in range(5)]
    store.write_documents(strong + weak)
    found = store.bm25("tower", top_k=3, filters={"field": "meta.file_type", "operator": "==", "value": "pdf"})
    assert len(found) == 3 and all(d.meta["file_type"] == "pdf" for d in found)


def test_dense_ranks_by_cosine_similarity(corpus):
    found = corpus.dense(np.array([0.9, 0.1, 0, 0, 0, 0, 0, 0]) * 5, top_k=2)  # unnormalised query
    assert contents(found) == ["The Eiffel Tower stands in Paris.", "Paris is the capital of France."]
    expected = [0.9 / np.hypot(0.9, 0.1), 0.1 / np.hypot(0.9, 0.1)]
    assert [d.score for d in found] == pytest.approx(expected, abs=1e-5)


def test_filtered_dense_searches_only_matching_passages(corpus):
    pdf = {"field": "meta.file_type", "operator": "==", "value": "pdf"}
    assert contents(corpus.dense(unit(0), top_k=3, filters=pdf)) == ["The Berlin television tower is tall."]
    md_or_page = {"operator": "OR", "conditions": [{"field": "meta.file_type", "operator": "==", "value": "md"},
                                                   {"field": "meta.page_number", "operator": ">=", "value": 3}]}
    assert set(contents(corpus.dense(unit(0), top_k=5, filters=md_or_page))) == {
        "The Berlin television tower is tall.", "Rome has many old churches."}


def test_dense_without_embeddings_says_to_reindex(store):
    store.write_documents([Document(content="bm25 only")])
    with pytest.raises(ValueError, match="no embeddings.*re-index"):
        store.dense(unit(0), top_k=1)


def test_dense_refuses_a_query_of_another_dimension(corpus):
    with pytest.raises(ValueError, match="dimensions"):
        corpus.dense([1.0, 0.0], top_k=1)


def test_documents_without_embeddings_are_left_out_of_dense_results(corpus):
    corpus.write_documents([passage("e.txt", "no vector here")])
    assert "no vector here" not in contents(corpus.dense(unit(5), top_k=10))
    assert contents(corpus.bm25("vector", top_k=10)) == ["no vector here"]


def test_the_search_filters_of_the_cli_the_page_and_tune(corpus):
    """File types (`ask --file-type`), a folder (the page's, as a path prefix), and a title left out (tune
    asks unanswerable questions with their article filtered out), alone and together."""
    corpus.replace_files([(record("notes/d.md"), [passage("notes/d.md", "A tower in Rome.", 4, title="Rome")])])
    types = {"field": "meta.file_type", "operator": "in", "value": ["md", "pdf"]}
    folder = {"field": "meta.file_path", "operator": "prefix", "value": "docs/"}
    not_rome = {"field": "meta.title", "operator": "!=", "value": "Rome"}
    assert set(contents(corpus.bm25("tower Rome", top_k=5, filters=types))) == {
        "The Berlin television tower is tall.", "Rome has many old churches.", "A tower in Rome."}
    assert set(contents(corpus.bm25("Rome tower", top_k=5, filters=folder))) == {
        "The Eiffel Tower stands in Paris.", "The Berlin television tower is tall."}
    assert "Rome has many old churches." not in contents(corpus.dense(unit(3), top_k=5, filters=folder))
    assert {d.meta["file_path"] for d in corpus.filter_documents(folder)} == {"docs/a.txt", "docs/b.pdf"}
    assert "A tower in Rome." not in contents(corpus.bm25("tower Rome", top_k=5, filters=not_rome))
    both = {"operator": "AND", "conditions": [types, not_rome,
                                              {"operator": "NOT", "conditions": [folder]}]}
    assert contents(corpus.dense(unit(4), top_k=5, filters=both)) == ["Rome has many old churches."]


def test_malformed_filters_fail_even_on_an_empty_store(store):
    with pytest.raises(FilterError):
        store.bm25("x", top_k=1, filters={"field": "meta.a", "operator": "like", "value": 1})
    with pytest.raises(FilterError):
        store.filter_documents({"operator": "AND"})


def test_content_filters_compare_the_whole_text_where_a_store_declares_them_and_are_refused_elsewhere(corpus):
    """``content_filters``: the embedded store compares a passage's text exactly; a store that keeps it only
    analysed for BM25 (Elasticsearch) refuses such filters rather than answer them wrongly."""
    same = {"field": "content", "operator": "==", "value": "Paris is the capital of France."}
    pdf_or_same = {"operator": "OR", "conditions": [{"field": "meta.file_type", "operator": "==", "value": "pdf"}, same]}
    if not corpus.content_filters:
        for search in (lambda: corpus.filter_documents(same), lambda: corpus.bm25("Paris", 5, same),
                       lambda: corpus.dense(unit(1), 5, pdf_or_same)):
            with pytest.raises(FilterError):
                search()
        return
    assert contents(corpus.filter_documents(same)) == ["Paris is the capital of France."]
    for near in ("Paris is the capital of France", "paris is the capital of france.", "Paris"):
        assert corpus.filter_documents({"field": "content", "operator": "==", "value": near}) == []
    assert contents(corpus.bm25("Paris", top_k=5, filters=same)) == ["Paris is the capital of France."]
    assert set(contents(corpus.dense(unit(1), top_k=5, filters=pdf_or_same))) == {
        "Paris is the capital of France.", "The Berlin television tower is tall."}
    others = corpus.filter_documents({"field": "content", "operator": "!=", "value": same["value"]})
    assert len(others) == 3 and same["value"] not in contents(others)


def test_filter_results_follow_changes(corpus):
    pdf = {"field": "meta.file_type", "operator": "==", "value": "pdf"}
    assert len(corpus.filter_documents(pdf)) == 1
    corpus.replace_files([(record("docs/d.pdf"), [passage("docs/d.pdf", "Another tower.", 5)])])
    assert len(corpus.filter_documents(pdf)) == 2
    assert len(corpus.bm25("tower", top_k=5, filters=pdf)) == 2


# -- checking and copying ------------------------------------------------------------------------------


def test_check_finds_nothing_wrong_with_a_sound_store(corpus):
    findings = corpus.check()
    assert findings and all(finding.ok for finding in findings)


def test_bulk_runs_keep_what_they_wrote(store):
    with store.bulk():
        store.replace_files([(record("a.txt"), [passage("a.txt", "Written in bulk.", 0)])])
    assert contents(store.bm25("bulk", top_k=1)) == ["Written in bulk."]
    store.verify()


@pytest.mark.parametrize("direction", ["from the embedded store", "into the embedded store"])
def test_store_copy_moves_passages_vectors_records_and_roots_once(kind, tmp_path, direction):
    """Between the embedded store and this kind (embedded to embedded where that is the kind): nothing is
    embedded again, a second copy copies nothing, and an interrupted one resumes."""
    embedded = StoreKind("embedded", tmp_path / "embedded")
    try:
        source, target = (embedded.open(), kind.open("copy")) if direction.startswith("from") else (kind.open(), embedded.open("copy"))
        fill_corpus(source)
        source.write_documents([Document(content="of no file", meta={"file_path": "squad title"}, embedding=unit(6))])
        source.replace_files([(record("empty.txt"), [])])
        source.record_roots([tmp_path / "docs"])

        first = copy_store(source, target)
        assert (first.files, first.passages, first.unfiled, first.unchanged) == (4, 4, 1, 0)
        assert as_stored(target.filter_documents()) == as_stored(source.filter_documents())
        assert [(r.path, r.content_hash, r.passages) for r in target.files()] == [
            (r.path, r.content_hash, r.passages) for r in source.files()]
        assert target.roots() == source.roots()
        assert contents(target.dense(unit(3), top_k=1)) == ["Rome has many old churches."]

        assert copy_store(source, target).files == 0  # idempotent
        source.replace_files([(record("docs/a.txt", "h2"), [passage("docs/a.txt", "Lyon is in France.", 4)])])
        target.remove_files(["notes/c.md"])  # as if a copy had stopped before this file
        again = copy_store(source, target)
        assert (again.files, again.unchanged) == (2, 2)
        assert as_stored(target.filter_documents()) == as_stored(source.filter_documents())
    finally:
        embedded.close()


def test_store_copy_refuses_vectors_of_another_dimension_before_writing_them(kind, tmp_path):
    embedded = StoreKind("embedded", tmp_path / "embedded")
    try:
        source, target = embedded.open(), kind.open("copy")
        fill_corpus(source)
        target.write_documents([Document(content="wide", embedding=[1.0] * 16)])
        with pytest.raises((ValueError, StoreError), match="embedding"):
            copy_store(source, target)
        assert contents(target.filter_documents()) == ["wide"] and target.files() == []
    finally:
        embedded.close()
