"""Specifications of the embedded document store beyond the store contract (test_store_contract.py runs
that on every store): atomic writes, its indexes and their folders, persistence, checking and repairing,
and crash safety (a writer killed with SIGKILL at random moments)."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import corpusqa.indexing.store.embedded as store_module
import numpy as np
import pytest
from corpusqa.indexing.store import EmbeddedDocumentStore, StoreError
from corpusqa.indexing.store import dense as dense_module
from corpusqa.indexing.store import folders as store_folders
from corpusqa.indexing.store import keyword as keyword_module
from corpusqa.indexing.store.keyword import KeywordIndex
from corpusqa.indexing.store.maintenance import check_store, repair_store
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.core.serialization import import_class_by_name
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from store_samples import DIM, contents, fill_corpus, passage, record, unit


@pytest.fixture
def store(tmp_path):
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        yield store


@pytest.fixture
def corpus(store):
    fill_corpus(store)
    return store


# -- writing -------------------------------------------------------------------------------------------


def test_a_failing_write_writes_nothing(store):
    store.write_documents([Document(content="kept", embedding=unit(0))])
    batch = [Document(content="new one"), Document(content="wrong size", embedding=[1.0, 0.0])]
    with pytest.raises(ValueError, match="embedding"):
        store.write_documents(batch)
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([Document(content="new two"), Document(content="kept", embedding=unit(0))])
    assert contents(store.filter_documents()) == ["kept"]
    assert contents(store.bm25("new", top_k=5)) == []


def test_repeated_ids_in_one_batch_follow_the_policy(store):
    first, second = Document(id="x", content="first"), Document(id="x", content="second")
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([first, second], policy=DuplicatePolicy.FAIL)
    assert store.write_documents([first, second], policy=DuplicatePolicy.SKIP) == 1
    assert contents(store.filter_documents()) == ["first"]
    assert store.write_documents([first, second], policy=DuplicatePolicy.OVERWRITE) == 1
    assert contents(store.filter_documents()) == ["second"]


# -- stats ---------------------------------------------------------------------------------------------


def test_stats_name_the_embedded_indexes_and_their_folders_on_disk(corpus):
    """The contract's counts are in the contract suite; these are the embedded store's own."""
    stats = corpus.stats()
    assert (stats["dense_index"], stats["bm25_passages"], stats["dense_passages"]) == ("flat", 4, 4)
    assert all(stats["disk_bytes"][part] > 0 for part in ("sqlite", "bm25", "dense"))


def test_stats_and_files_are_read_once_per_generation(corpus, monkeypatch):
    """A UI asks on every click; counting distinct sources reads every row."""
    counted = []
    monkeypatch.setattr(corpus, "_counts", spy(corpus._counts, counted))
    corpus.stats()
    corpus.files().clear()
    assert corpus.stats()["passages"] == 4 and len(corpus.files()) == 3 and len(counted) == 1
    corpus.remove_files(["notes/c.md"])
    assert corpus.stats()["passages"] == 3 and len(corpus.files()) == 2 and len(counted) == 2


# -- retrieval -----------------------------------------------------------------------------------------


def test_filters_on_content_work(corpus):
    found = corpus.filter_documents({"field": "content", "operator": "==", "value": "Rome has many old churches."})
    assert contents(found) == ["Rome has many old churches."]


# -- the approximate index -------------------------------------------------------------------------------


def random_passages(count: int, seed: int) -> tuple[np.ndarray, list[Document]]:
    """Unit vectors in 16 dimensions, and passages i = 0..count-1 carrying them (``meta["i"]``)."""
    vectors = np.random.default_rng(seed).standard_normal((count, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [Document(id=str(i), content=f"passage {i}", meta={"i": i}, embedding=v.tolist())
            for i, v in enumerate(vectors)]
    return vectors, docs


def test_above_the_flat_limit_dense_uses_hnsw_and_stays_correct(store, monkeypatch):
    monkeypatch.setattr(dense_module, "FLAT_LIMIT", 60)
    vectors, docs = random_passages(200, seed=0)
    store.write_documents(docs[:50])
    assert store.stats()["dense_index"] == "flat"
    store.write_documents(docs[50:])
    assert store.stats()["dense_index"] == "hnsw"
    assert store.dense(vectors[17], top_k=1)[0].id == "17"

    def exact(query, allowed):
        scores = vectors[allowed] @ query
        return [str(allowed[i]) for i in np.argsort(-scores)[:5]]

    few = {"field": "meta.i", "operator": "<", "value": 40}  # under the limit: scored exactly
    assert [d.id for d in store.dense(vectors[3], top_k=5, filters=few)] == exact(vectors[3], np.arange(40))
    many = {"field": "meta.i", "operator": ">=", "value": 20}  # over it: HNSW with a selector
    assert all(int(d.id) >= 20 for d in store.dense(vectors[3], top_k=5, filters=many))

    store.delete_documents(["17", "18"])  # tombstones
    assert store.dense(vectors[17], top_k=1)[0].id != "17"
    assert store.stats()["dense_passages"] == 198
    store.delete_documents([str(i) for i in range(100, 160)])  # past the tombstone limit: rebuilt
    assert store.stats()["dense_passages"] == 138
    assert store.dense(vectors[120], top_k=1)[0].id not in {str(i) for i in range(100, 160)}
    assert store.dense(vectors[99], top_k=1)[0].id == "99"
    store.close()
    with EmbeddedDocumentStore(store.path) as reopened:
        assert reopened.stats()["dense_index"] == "hnsw"
        assert [d.id for d in reopened.dense(vectors[3], top_k=5, filters=few)] == exact(vectors[3], np.arange(40))


def test_vectors_added_to_a_graph_wait_beside_it_until_it_is_saved(store, monkeypatch):
    """Adding to a loaded FAISS graph first copies all its vectors into a larger array: a one-file commit
    leaves the graph alone and is searched exactly beside it."""
    monkeypatch.setattr(dense_module, "FLAT_LIMIT", 60)
    vectors, docs = random_passages(232, seed=1)
    store.write_documents(docs[:200])
    store.write_documents(docs[200:230])
    index = store._indexes["dense"].index
    assert (index.kind, index.index.ntotal, index.recent.ntotal) == ("hnsw", 200, 30)
    assert store.dense(vectors[215], top_k=1)[0].id == "215"
    recent = {"field": "meta.i", "operator": ">=", "value": 195}
    scores = vectors[195:230] @ vectors[3]
    assert [d.id for d in store.dense(vectors[3], top_k=5, filters=recent)] == [str(195 + i) for i in np.argsort(-scores)[:5]]
    many = {"field": "meta.i", "operator": ">=", "value": 100}
    assert store.dense(vectors[225], top_k=1, filters=many)[0].id == "225"
    store.delete_documents(["215"])
    assert store.dense(vectors[215], top_k=1)[0].id != "215"
    monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 0)
    store.write_documents(docs[230:])
    assert (index.index.ntotal, index.recent) == (232, None), "saving folds them into the graph"
    expected = [(d.id, round(d.score, 5)) for d in store.dense(vectors[231], top_k=10)]
    assert expected[0][0] == "231"
    store.close()
    with EmbeddedDocumentStore(store.path) as reopened:
        assert [(d.id, round(d.score, 5)) for d in reopened.dense(vectors[231], top_k=10)] == expected


# -- persistence and crash safety ------------------------------------------------------------------------


def answers(store: EmbeddedDocumentStore) -> dict:
    """What a store answers: enough to tell two stores' contents apart."""
    pdf = {"field": "meta.file_type", "operator": "==", "value": "pdf"}
    return {
        "documents": [(d.id, d.content, d.meta) for d in store.filter_documents()],
        "files": store.files(),
        "bm25": [(d.id, round(d.score, 5)) for d in store.bm25("Paris tower France", top_k=10)],
        "dense": [(d.id, round(d.score, 5)) for d in store.dense(unit(0), top_k=10)],
        "filtered": [d.id for d in store.bm25("tower", top_k=10, filters=pdf)],
    }


def test_a_reopened_store_answers_the_same(corpus):
    before = answers(corpus)
    corpus.close()
    with EmbeddedDocumentStore(corpus.path) as reopened:
        assert answers(reopened) == before
        assert reopened.stats()["bm25_passages"] == 4


def test_stores_sharing_a_folder_see_each_others_writes(corpus):
    with EmbeddedDocumentStore(corpus.path) as other:
        assert contents(other.bm25("Lyon", top_k=1)) == []
        corpus.replace_files([(record("docs/d.txt"), [passage("docs/d.txt", "Lyon has a tower.", 5)])])
        assert contents(other.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]
        assert contents(other.dense(unit(5), top_k=1)) == ["Lyon has a tower."]


def test_indexes_older_than_the_database_are_rebuilt(corpus, tmp_path):
    """A crash between a commit and the index write leaves indexes of the previous generation."""
    old_indexes = [p for p in corpus.path.iterdir() if not p.name.startswith("store.sqlite3")]
    for folder in old_indexes:
        shutil.copytree(folder, tmp_path / "old" / folder.name)
    corpus.replace_files([(record("docs/a.txt", "h2"), [passage("docs/a.txt", "Lyon tower, France.", 0)])])
    expected = answers(corpus)
    corpus.close()
    for folder in corpus.path.iterdir():
        if not folder.name.startswith("store.sqlite3"):
            shutil.rmtree(folder)
    for folder in (tmp_path / "old").iterdir():
        shutil.copytree(folder, corpus.path / folder.name)
    with EmbeddedDocumentStore(corpus.path) as reopened:
        assert answers(reopened) == expected


def held_generations(store: EmbeddedDocumentStore) -> dict[str, int]:
    return {name: held.generation for name, held in store._indexes.items()}


def test_inside_bulk_commits_leave_the_indexes_alone_and_own_reads_catch_up(corpus):
    before = held_generations(corpus)
    with corpus.bulk():
        for i, city in enumerate(["Lyon", "Nice", "Metz"]):
            corpus.replace_files([(record(f"docs/{city}.txt"), [passage(f"docs/{city}.txt", f"{city} has a tower.", 5 + i)])])
        assert held_generations(corpus) == before, "commits inside bulk do not touch the indexes"
        assert contents(corpus.bm25("Nice", top_k=1)) == ["Nice has a tower."], "this store's reads catch up"
        corpus.remove_files(["docs/Nice.txt"])
    generation = corpus._generation()
    assert held_generations(corpus) == {"bm25": generation, "dense": generation}, "leaving bulk catches up"
    with EmbeddedDocumentStore(corpus.path) as other:
        assert contents(other.dense(unit(7), top_k=1)) == ["Metz has a tower."]
        assert contents(other.bm25("Nice", top_k=1)) == []


def test_a_bulk_run_that_dies_keeps_every_committed_batch(corpus):
    """No index write at all inside bulk (as if killed before leaving it): the rows rebuild them."""
    bulk = corpus.bulk()
    bulk.__enter__()
    corpus.replace_files([(record("docs/d.txt"), [passage("docs/d.txt", "Lyon has a tower.", 5)])])
    with EmbeddedDocumentStore(corpus.path) as other:
        assert contents(other.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]
        assert contents(other.dense(unit(5), top_k=1)) == ["Lyon has a tower."]
        assert contents(other.bm25("Paris", top_k=1)), "what was there before is still found"


def test_a_reader_far_behind_a_bulk_run_serves_its_indexes_until_the_run_ends(corpus, monkeypatch):
    """A search UI open during a long index run keeps answering from what it has, instead of rebuilding
    its indexes after every commit of the run; deleted passages drop out all the same."""
    monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 0)
    with EmbeddedDocumentStore(corpus.path) as reader:
        assert contents(reader.bm25("Rome", top_k=1)) == ["Rome has many old churches."]
        with corpus.bulk():
            corpus.replace_files([(record("docs/d.txt"), [passage("docs/d.txt", "Lyon has a tower.", 5)])])
            corpus.remove_files(["notes/c.md"])
            assert contents(reader.bm25("Lyon", top_k=1)) == [], "the run's new passages wait for its end"
            assert contents(reader.dense(unit(5), top_k=1)) != ["Lyon has a tower."]
            assert contents(reader.bm25("Rome", top_k=1)) == [], "removed passages are gone at once"
        assert contents(reader.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]
        assert contents(reader.dense(unit(5), top_k=1)) == ["Lyon has a tower."]


_BULK_WRITER = """
import os, signal, sys
from haystack import Document
from corpusqa.indexing.store import EmbeddedDocumentStore, FileRecord, StoreError

store = EmbeddedDocumentStore(sys.argv[1])
with store.bulk():
    store.replace_files([(FileRecord("docs/d.txt", "h", 1, 0.0),
                          [Document(content="Lyon has a tower.", meta={"file_path": "docs/d.txt"})])])
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_bulk_run_killed_midway_does_not_keep_readers_behind(corpus, monkeypatch, tmp_path):
    """The run's lock dies with it, so readers catch up with what it committed."""
    monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 0)
    corpus.close()
    with EmbeddedDocumentStore(corpus.path) as reader:
        assert contents(reader.bm25("Lyon", top_k=1)) == []
        script = tmp_path / "bulk_writer.py"
        script.write_text(_BULK_WRITER)
        run = subprocess.run([sys.executable, str(script), str(corpus.path)], check=False, capture_output=True, text=True)
        assert run.returncode == -signal.SIGKILL, run.stderr
        assert contents(reader.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]


def test_a_small_commit_is_applied_in_place_and_saved_only_past_the_replay_limit(store, monkeypatch):
    """Re-indexing one file of a large corpus costs what the file holds, not a rebuild of both indexes."""
    store.replace_files([(record(f"docs/{i}.txt"), [passage(f"docs/{i}.txt", f"Passage {i} of the corpus.", i % DIM)])
                         for i in range(200)])
    builds, saves = [], []
    monkeypatch.setattr(KeywordIndex, "build", spy(KeywordIndex.build, builds))
    monkeypatch.setattr(dense_module.DenseIndex, "build", spy(dense_module.DenseIndex.build, builds))
    monkeypatch.setattr(store_folders, "save", spy(store_folders.save, saves))
    store.replace_files([(record("docs/7.txt", "h2"), [passage("docs/7.txt", "Lyon has a tower.", 1)])])
    assert builds == [] and saves == [], "a commit of one file neither rebuilds nor saves"
    assert contents(store.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]
    assert "Passage 7 of the corpus." not in contents(store.bm25("Passage 7", top_k=200))
    assert store.stats()["bm25_passages"] == 200
    monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 2)
    store.replace_files([(record("docs/8.txt", "h2"), [passage("docs/8.txt", "Metz has a tower.", 2)])])
    assert sorted(arguments[1] for arguments in saves) == ["bm25", "dense"], "past the replay limit, both are saved"
    assert builds == []


def spy(function, calls: list):
    """``function``, recording the arguments of each call in ``calls``."""

    def called(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return called


def test_a_reopened_store_replays_the_commits_since_its_saved_indexes(store):
    store.replace_files([(record(f"docs/{i}.txt"), [passage(f"docs/{i}.txt", f"Tower {i} of the corpus.", i % DIM)])
                         for i in range(200)])
    for i in (3, 4):
        store.replace_files([(record(f"docs/{i}.txt", "h2"), [passage(f"docs/{i}.txt", f"Lyon tower {i}.", 5)])])
    store.remove_files(["docs/5.txt"])
    expected = {"bm25": [(d.id, d.score) for d in store.bm25("Lyon tower 5", top_k=10)],
                "dense": [(d.id, d.score) for d in store.dense(unit(5), top_k=10)]}
    assert store._indexes["bm25"].unsaved == 5, "the commits were replayed, not saved"
    store.close()
    with EmbeddedDocumentStore(store.path) as reopened:
        assert {"bm25": [(d.id, d.score) for d in reopened.bm25("Lyon tower 5", top_k=10)],
                "dense": [(d.id, d.score) for d in reopened.dense(unit(5), top_k=10)]} == expected


def test_removals_every_saved_index_reflects_are_forgotten_and_a_reader_older_than_that_reloads(corpus, monkeypatch):
    monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 0)  # every catch-up saves
    monkeypatch.setattr(keyword_module, "DELTA_SHARE", 10.0)  # and no change is big enough for a rebuild
    with EmbeddedDocumentStore(corpus.path) as reader:
        assert reader.stats()["bm25_passages"] == 4
        corpus.remove_files(["notes/c.md"])
        corpus.replace_files([(record("docs/a.txt", "h2"), [passage("docs/a.txt", "Lyon has a tower.", 5)])])
        assert corpus._db.execute("SELECT generation FROM removed").fetchall() == [(3,), (3,)], "a.txt's two rows"
        assert corpus._state("log_start") == 2 > reader._indexes["bm25"].generation
        assert reader.stats()["bm25_passages"] == reader.stats()["dense_passages"] == 2, "c.md's removal is not lost"
        assert contents(reader.bm25("Lyon", top_k=1)) == ["Lyon has a tower."]


def test_unreadable_index_files_are_rebuilt(corpus):
    expected = answers(corpus)
    corpus.close()
    for file in corpus.path.glob("*-*/*"):
        file.write_bytes(b"garbage")
    with EmbeddedDocumentStore(corpus.path) as reopened:
        assert answers(reopened) == expected


# -- identity and integrity -----------------------------------------------------------------------------


def index_folders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and p.name.startswith(("bm25-", "dense-")))


def test_index_folders_left_by_another_database_are_rebuilt_not_loaded(corpus, tmp_path):
    """A database replaced by another one whose generation reaches the folders' number: the folders hold
    the old database's passages under row numbers the new one gives to others."""
    other = EmbeddedDocumentStore(tmp_path / "other")
    other.replace_files([(record("new/x.txt"), [passage("new/x.txt", "Lyon has a museum.", 4)]),
                         (record("new/y.txt"), [passage("new/y.txt", "Nice has a harbour.", 5)])])
    other.close()
    assert corpus._generation() == 1 and index_folders(other.path) == index_folders(corpus.path) == ["bm25-1", "dense-1"]
    corpus.close()
    for name in ["bm25-1", "dense-1"]:  # the other store's own folders for generation 1 give way to corpus's
        shutil.rmtree(other.path / name)
        shutil.copytree(corpus.path / name, other.path / name)
    with EmbeddedDocumentStore(other.path) as reopened:
        assert contents(reopened.bm25("Lyon museum Paris", top_k=5)) == ["Lyon has a museum."]
        assert contents(reopened.dense(unit(5), top_k=1)) == ["Nice has a harbour."]
        assert reopened.stats()["bm25_passages"] == reopened.stats()["dense_passages"] == 2


@pytest.mark.parametrize("database", ["deleted", "emptied"])
def test_index_folders_without_their_database_are_refused_not_taken_for_an_empty_store(corpus, database):
    corpus.close()
    for file in corpus.path.glob("store.sqlite3*"):
        file.unlink()
    if database == "emptied":
        (corpus.path / "store.sqlite3").write_bytes(b"")
    with pytest.raises(StoreError, match="bm25-1, dense-1 without their database") as raised:
        EmbeddedDocumentStore(corpus.path)
    message = str(raised.value)
    assert str(corpus.path) in message and "corpusqa store repair" in message and "\n" not in message
    assert sorted(p.name for p in corpus.path.iterdir() if p.name.startswith("store.sqlite3")) == (
        ["store.sqlite3"] if database == "emptied" else [])


def test_a_database_restored_from_an_older_backup_does_not_load_newer_index_folders(corpus, tmp_path):
    corpus.close()
    shutil.copy(corpus.path / "store.sqlite3", tmp_path / "backup.sqlite3")  # closed: the WAL is checkpointed
    with EmbeddedDocumentStore(corpus.path) as store:
        store.replace_files([(record("docs/d.txt"), [passage("docs/d.txt", "Lyon has a tower.", 5)])])
        store.rebuild_indexes()
    assert index_folders(corpus.path) == ["bm25-2", "dense-2"]
    shutil.copy(tmp_path / "backup.sqlite3", corpus.path / "store.sqlite3")
    with EmbeddedDocumentStore(corpus.path) as restored:
        restored.replace_files([(record("docs/e.txt"), [passage("docs/e.txt", "Metz has a cathedral.", 6)])])
        assert restored._generation() == 2
        assert contents(restored.bm25("Lyon Metz", top_k=5)) == ["Metz has a cathedral."]
        assert contents(restored.dense(unit(5), top_k=1)) != ["Lyon has a tower."]


def garble_rows(folder: Path) -> None:
    """Shift the row numbers an index holds: the file still loads, and names passages that do not exist."""
    rows = np.load(folder / "rows.npy")
    np.save(folder / "rows.npy", rows + 1000)


def test_a_damaged_index_folder_is_rebuilt_and_replaced_on_disk_once(corpus, monkeypatch, caplog):
    expected = answers(corpus)
    corpus.close()
    garble_rows(corpus.path / "dense-1")
    with caplog.at_level("WARNING"), EmbeddedDocumentStore(corpus.path) as first:
        assert answers(first) == expected
    assert "rows.npy is damaged" in caplog.text
    builds = []
    monkeypatch.setattr(dense_module.DenseIndex, "build", spy(dense_module.DenseIndex.build, builds))
    monkeypatch.setattr(KeywordIndex, "build", spy(KeywordIndex.build, builds))
    caplog.clear()
    with caplog.at_level("WARNING"), EmbeddedDocumentStore(corpus.path) as second:
        assert answers(second) == expected
    assert builds == [] and caplog.text == "", "the replaced folder loads"


def test_a_folder_of_other_files_is_not_taken_for_a_store(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.txt").write_text("A document, not a store.")
    with pytest.raises(StoreError, match="holds other files and no store") as raised:
        EmbeddedDocumentStore(tmp_path / "docs")
    assert str(tmp_path / "docs") in str(raised.value)
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["report.txt"]
    (tmp_path / "empty").mkdir()
    with EmbeddedDocumentStore(tmp_path / "empty") as store:
        assert store.count_documents() == 0


def test_a_garbled_database_is_one_error_naming_the_store_and_what_to_do(corpus):
    corpus.close()
    database = corpus.path / "store.sqlite3"
    database.write_bytes(b"\x00" * 100 + database.read_bytes()[100:])
    with pytest.raises(StoreError, match="database store.sqlite3 is damaged") as raised:
        EmbeddedDocumentStore(corpus.path)
    assert str(corpus.path) in str(raised.value) and "corpusqa store check" in str(raised.value)


def damage_a_documents_page(path: Path) -> None:
    """Overwrite a page in the middle of a closed store's database with bytes no B-tree page has."""
    database = path / "store.sqlite3"
    data = bytearray(database.read_bytes())
    pages = len(data) // 4096
    data[pages // 2 * 4096 : (pages // 2 + 1) * 4096] = b"\xff" * 4096
    database.write_bytes(bytes(data))


def test_verify_finds_a_damaged_page_that_reading_file_records_does_not(store):
    store.replace_files([(record(f"docs/{i}.txt"), [passage(f"docs/{i}.txt", f"Passage {i} " + "words " * 300)])
                         for i in range(60)])
    store.verify()
    store.close()
    damage_a_documents_page(store.path)
    with EmbeddedDocumentStore(store.path) as damaged:
        assert damaged.file_record("docs/0.txt") is not None, "the damage hides until the page is read"
        with pytest.raises(StoreError, match="is damaged"):
            damaged.verify()


def test_check_finds_and_repair_replaces_damaged_index_folders(corpus):
    expected = answers(corpus)
    corpus.close()
    garble_rows(corpus.path / "bm25-1")
    findings = {finding.subject: finding for finding in check_store(corpus.path)}
    assert findings["database"].ok and findings["files"].ok and findings["dense-1"].ok
    assert not findings["bm25-1"].ok and "rows.npy is damaged" in findings["bm25-1"].text
    assert repair_store(corpus.path) == ["rebuilt the bm25 index from the database's rows: 4 passages",
                                         "rebuilt the dense index from the database's rows: 4 passages"]
    assert all(finding.ok for finding in check_store(corpus.path))
    with EmbeddedDocumentStore(corpus.path) as repaired:
        assert answers(repaired) == expected


def test_repair_starts_an_empty_store_where_index_folders_lost_their_database(corpus):
    corpus.close()
    (corpus.path / "store.sqlite3").unlink()
    [finding] = check_store(corpus.path)
    assert not finding.ok and "without their database" in finding.text
    assert repair_store(corpus.path)[0].startswith("removed 2 index folders that had no database")
    with EmbeddedDocumentStore(corpus.path) as repaired:
        assert repaired.count_documents() == 0 and repaired.bm25("Paris", top_k=5) == []
    assert not {"bm25-1", "dense-1"} & set(index_folders(corpus.path))


def test_check_reports_a_damaged_database_and_repair_refuses_to_guess(store):
    store.replace_files([(record(f"docs/{i}.txt"), [passage(f"docs/{i}.txt", f"Passage {i} " + "words " * 300)])
                         for i in range(60)])
    store.close()
    damage_a_documents_page(store.path)
    [finding] = check_store(store.path)
    assert finding.subject == "database" and not finding.ok and finding.text.startswith("damaged: ")
    with pytest.raises(StoreError, match="cannot be repaired in place"):
        repair_store(store.path)


def test_serialisation_round_trip(store):
    data = store.to_dict()
    assert data == {"type": "corpusqa.indexing.store.embedded.EmbeddedDocumentStore",
                    "init_parameters": {"path": str(store.path), "embedding_dim": None}}
    with EmbeddedDocumentStore.from_dict(data) as copy:
        assert (copy.path, copy.embedding_dim) == (store.path, None)


def test_pipelines_naming_the_store_by_its_package_still_load(store):
    """YAML written before the store had a module of its own names it as corpusqa.indexing.store.EmbeddedDocumentStore."""
    assert import_class_by_name("corpusqa.indexing.store.EmbeddedDocumentStore") is EmbeddedDocumentStore


def test_haystack_document_writer_writes_into_the_store(store):
    pipeline = Pipeline()
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.run({"writer": {"documents": [Document(content="written by a pipeline")]}})
    assert contents(store.bm25("pipeline", top_k=1)) == ["written by a pipeline"]
    assert Pipeline.loads(pipeline.dumps()).get_component("writer").document_store.path == store.path


_WRITER = """
import sys
import numpy as np
from haystack import Document
from corpusqa.indexing.store import EmbeddedDocumentStore, FileRecord, StoreError

path, seed, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if sys.argv[4] == "replays":
    import corpusqa.indexing.store.embedded as store_module
    import corpusqa.indexing.store.keyword as keyword_module
    keyword_module.DELTA_SHARE, store_module._REPLAY_LIMIT = 1e9, 50
rng = np.random.default_rng(seed)
store = EmbeddedDocumentStore(path)
print("ready", flush=True)
while True:
    batch += 1
    files = rng.choice(8, size=3, replace=False)
    store.replace_files([
        (FileRecord(f"f{j}.txt", f"batch{batch}", 1, 0.0),
         [Document(content=f"file{j}token batch{batch} passage {i}", embedding=np.eye(8)[j].tolist(),
                   meta={"file_path": f"f{j}.txt", "batch": batch}) for i in range(rng.integers(1, 40))])
        for j in files])
    if batch % 4 == 0:
        store.remove_files([f"f{rng.integers(8)}.txt"])
"""


def assert_consistent(path: Path) -> int:
    """The store opens, every file's passages come from one batch, and every access path agrees."""
    with EmbeddedDocumentStore(path) as store:
        stats = store.stats()
        assert stats["passages"] == store.count_documents() == stats["bm25_passages"] == stats["dense_passages"]
        records = store.files()
        assert sum(r.passages for r in records) == store.count_documents()
        for r in records:
            j = int(r.path[1:-4])
            passages = store.filter_documents({"field": "meta.file_path", "operator": "==", "value": r.path})
            ids = {d.id for d in passages}
            assert len(ids) == r.passages
            assert {d.meta["batch"] for d in passages} == {int(r.content_hash[5:])}
            assert {d.id for d in store.bm25(f"file{j}token", top_k=100)} == ids
            assert {d.id for d in store.dense(unit(j), top_k=100) if d.score > 0.5} == ids
        return len(records)


@pytest.mark.parametrize("indexes", ["rebuilds", "replays"])
def test_a_writer_killed_at_any_moment_leaves_a_consistent_store(tmp_path, monkeypatch, indexes):
    """Rebuilds: small changes on a small store rebuild BM25 each time. Replays: no change is too big for
    an in-place update, and indexes are saved every 50 passages, so each reader replays the log."""
    if indexes == "replays":
        monkeypatch.setattr(keyword_module, "DELTA_SHARE", 1e9)
        monkeypatch.setattr(store_module, "_REPLAY_LIMIT", 50)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    timing = random.Random(7)
    files_seen = 0
    for round_ in range(3):
        arguments = [str(tmp_path / "store"), str(round_), str(1000 * round_), indexes]  # store, seed, first batch
        writer = subprocess.Popen([sys.executable, str(script), *arguments], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
        time.sleep(timing.uniform(0.2, 1.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
        files_seen = max(files_seen, assert_consistent(tmp_path / "store"))
    assert files_seen > 0, "the writer never committed a batch: the test proved nothing"
