"""What the `corpusqa` command refuses, and how it says so: one line naming what is wrong and what to do, never
a traceback, never a store made where none should be, and nothing printed that could drive the terminal.

Numbers out of range, folders that are not stores, stores that lost or damaged their database, a store
without embeddings asked for dense retrieval, documents holding terminal escapes, model weights that would
run code; and `corpusqa store check` / `store repair`.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from corpus_fixtures import small_files

from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.pipelines.cli import main

ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m\r"
TOWER = "The Eiffel Tower in Paris was completed in 1889 for the World's Fair."
TOWER_QUESTION = "When was the Eiffel Tower completed?"


def corpusqa(*argv) -> tuple[int, str, str]:
    """`corpusqa ARGV...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(command: str, err: str, *said: str) -> None:
    assert err.startswith(f"corpusqa {command}: error: ") and err.count("\n") == 1, err
    for words in said:
        assert words in err, err


@pytest.fixture
def bm25_store(tmp_path) -> Path:
    """A store of three SQuAD paragraphs and the Eiffel Tower, indexed without embeddings."""
    docs = tmp_path / "docs"
    small_files(docs, 3)
    (docs / "tower.txt").write_text(f"{TOWER} Its codename was Quorplefish.\n", encoding="utf-8")
    code, _, err = corpusqa("index", docs, "--store", tmp_path / "store", "--no-embed")
    assert code == 0, err
    return tmp_path / "store"


# -- numbers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["ask", "Who?", "--top-k", "0"], "--top-k must be from 1 to 100, not 0"),
        (["ask", "Who?", "--passages", "-3"], "--passages must be from 1 to 1,000, not -3"),
        (["ask", "Who?", "--passages", "1000000000"], "--passages must be from 1 to 1,000, not 1,000,000,000"),
        (["ask", "Who?", "--no-answer-threshold", "nan"], "--no-answer-threshold must be a finite number, not nan"),
        (["read", "-q", "Who?", "--context", "Ada.", "--top-k", "-1"], "--top-k must be from 1 to 100, not -1"),
        (["index", ".", "--max-passages", "0"], "--max-passages must be from 1 to 100,000,000, not 0"),
    ],
)
def test_numbers_out_of_range_are_refused_in_one_line_naming_the_flag_before_anything_opens(
    tmp_path, monkeypatch, argv, said
):
    monkeypatch.chdir(tmp_path)
    code, out, err = corpusqa(*argv, *(["--store", tmp_path / "store"] if argv[0] != "read" else []))
    assert code == 2 and out == ""
    assert_one_line_error(argv[0], err, said)
    assert not (tmp_path / "store").exists()


# -- stores -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["index", "."], ["ask", "Who?"], ["stats"]])
def test_a_folder_of_documents_given_as_the_store_is_refused_and_left_as_it_was(tmp_path, monkeypatch, command):
    docs = tmp_path / "docs"
    small_files(docs, 2)
    before = sorted(path.name for path in docs.iterdir())
    monkeypatch.chdir(tmp_path)
    code, _, err = corpusqa(*command, "--store", docs)
    assert code == 2
    assert_one_line_error(command[0], err, f"store {docs}: the folder holds other files and no store")
    assert sorted(path.name for path in docs.iterdir()) == before


def test_a_store_whose_database_was_deleted_is_refused_until_repair_starts_it_again(bm25_store, tmp_path):
    """The way stale indexes used to answer: index, delete the database, index other files one at a time."""
    for file in bm25_store.glob("store.sqlite3*"):
        file.unlink()
    others = small_files(tmp_path / "others", 12)
    code, _, err = corpusqa("index", others[0], "--store", bm25_store, "--no-embed")
    assert code == 2
    assert_one_line_error("index", err, "without their database", "corpusqa store repair")
    code, _, err = corpusqa("ask", "Who?", "--store", bm25_store, "--retriever", "bm25")
    assert code == 2
    assert_one_line_error("ask", err, "without their database")

    code, out, err = corpusqa("store", "repair", "--store", bm25_store)
    assert code == 0 and "removed 2 index folders that had no database" in out, err
    for other in others:
        assert corpusqa("index", other, "--store", bm25_store, "--no-embed")[0] == 0
    code, out, _ = corpusqa("stats", "--store", bm25_store, "--json")
    stats = json.loads(out)
    assert stats["files"] == 12 and stats["bm25_passages"] == stats["passages"]
    with EmbeddedDocumentStore(bm25_store) as store:
        for other in others:  # BM25 finds the new files (stale indexes found none of their words)
            found = store.bm25(other.read_text(encoding="utf-8"), top_k=5)
            assert str(other) in {passage.meta["file_path"] for passage in found}
        assert store.bm25("Quorplefish", top_k=5) == [], "nothing of the deleted database answers"


def test_a_garbled_database_is_one_line_naming_the_store_and_store_check(bm25_store):
    database = bm25_store / "store.sqlite3"
    for file in bm25_store.glob("store.sqlite3-*"):
        file.unlink()
    database.write_bytes(b"\x00" * 100 + database.read_bytes()[100:])
    for command in (["stats"], ["ask", "Who?", "--retriever", "bm25"], ["index", bm25_store.parent / "docs"]):
        code, _, err = corpusqa(*command, "--store", bm25_store)
        assert code == 2
        assert_one_line_error(command[0], err, f"store {bm25_store}: its database store.sqlite3 is damaged",
                              f"corpusqa store check --store {bm25_store}")  # fmt: skip


def test_index_stops_at_a_damaged_page_instead_of_reporting_files_unchanged(tmp_path):
    docs = tmp_path / "docs"
    small_files(docs, 60)
    assert corpusqa("index", docs, "--store", tmp_path / "store", "--no-embed")[0] == 0
    database = tmp_path / "store" / "store.sqlite3"
    data = bytearray(database.read_bytes())
    middle = len(data) // 4096 // 2 * 4096
    data[middle : middle + 4096] = b"\xff" * 4096
    database.write_bytes(bytes(data))
    code, out, err = corpusqa("index", docs, "--store", tmp_path / "store", "--no-embed")
    assert code == 2 and "unchanged" not in out
    assert_one_line_error("index", err, "is damaged")
    code, out, _ = corpusqa("store", "check", "--store", tmp_path / "store")
    assert code == 1 and out.startswith("PROBLEM  database: damaged: ")


def test_store_check_finds_a_damaged_index_and_store_repair_rebuilds_it(bm25_store):
    code, out, err = corpusqa("store", "check", "--store", bm25_store)
    assert code == 0, err
    assert out.splitlines() == [
        "     ok  database: integrity check passed: 4 passages of 4 files, generation 1",
        "     ok  files: every file's passages are stored",
        "     ok  bm25-1: matches the database at generation 1",
        "     ok  dense-1: matches the database at generation 1",
    ]
    rows = bm25_store / "bm25-1" / "rows.npy"
    np.save(rows, np.load(rows)[::-1].copy())
    code, out, _ = corpusqa("store", "check", "--store", bm25_store)
    assert code == 1
    assert "PROBLEM  bm25-1: rows.npy is damaged (size or checksum differs from its manifest)" in out.splitlines()
    assert out.splitlines()[-1] == f"`corpusqa store repair --store {bm25_store}` rebuilds the indexes from the database"
    code, out, _ = corpusqa("store", "repair", "--store", bm25_store)
    assert code == 0 and "rebuilt the bm25 index from the database's rows: 4 passages" in out
    assert corpusqa("store", "check", "--store", bm25_store)[0] == 0


# -- retrieval without embeddings -----------------------------------------------------------------------


def test_a_store_without_embeddings_answers_with_bm25_and_says_so_and_refuses_dense_by_name(bm25_store):
    code, out, err = corpusqa("ask", TOWER_QUESTION, "--store", bm25_store, "--json", "--no-answer-threshold", "0")
    assert code == 0, err
    assert json.loads(out)["answers"][0]["answer"] == "1889"
    assert err == (f"corpusqa ask: the store at {bm25_store} has no embeddings (indexed with --no-embed): "
                   "answering with BM25\n")  # fmt: skip
    for retriever in ("dense", "hybrid"):
        code, _, err = corpusqa("ask", TOWER_QUESTION, "--store", bm25_store, "--retriever", retriever)
        assert code == 2
        assert_one_line_error("ask", err, "has no embeddings", "--retriever bm25")


def test_eval_open_on_a_store_without_embeddings_evaluates_bm25_only_and_says_so(tiny_models, tmp_path):
    from corpusqa.pipelines.open_eval import index_passages, squad_passages
    from corpusqa.reader.squad_metric import load_squad
    from shared_data import SAMPLE_DIR

    data, store = SAMPLE_DIR / "dev-v1.1.json", tmp_path / "squad"
    with EmbeddedDocumentStore(store) as opened:
        index_passages(opened, squad_passages([load_squad(data)]), embed=False, progress=False)
    asked = ["eval", "open", "--data", data, "--store", store, "--limit", "2", "--passages", "2",
             "--model", tiny_models["bert-uncased"], "--json", "--quiet"]  # fmt: skip
    code, out, err = corpusqa(*asked)
    assert code == 0, err
    assert set(json.loads(out)) == {"passages", "questions", "bm25"}
    assert err == (f"corpusqa eval open: the store at {store} has no embeddings (indexed with --no-embed): "
                   "evaluating bm25 only\n")  # fmt: skip
    code, _, err = corpusqa(*asked, "--retriever", "bm25", "--retriever", "dense")
    assert code == 2
    assert_one_line_error("eval", err, "has no embeddings", "dense retrieval", "--retriever bm25")


# -- what is printed --------------------------------------------------------------------------------------


def test_control_characters_in_documents_are_stripped_from_text_and_escaped_in_json(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"{ESCAPES}tower.txt").write_text(f"{ESCAPES}{TOWER}{ESCAPES}\n", encoding="utf-8")
    (docs / f"{ESCAPES}empty.txt").write_bytes(b"")  # named in the summary as failed
    code, out, err = corpusqa("index", docs, "--store", tmp_path / "store", "--no-embed")
    assert code == 0, err
    assert "[2J]0;owned31mempty.txt: empty file" in out and not any(char in out for char in "\x1b\x07\x9b\r")

    asked = ["ask", TOWER_QUESTION, "--store", tmp_path / "store", "--retriever", "bm25", "--no-answer-threshold", "0"]
    code, out, err = corpusqa(*asked)
    assert code == 0, err
    assert "1889" in out and not any(char in out for char in "\x1b\x07\x9b\r")

    code, out, err = corpusqa(*asked, "--json")
    assert code == 0, err
    assert not any(char in out for char in "\x1b\x07\x9b\r"), "escaped, not raw"
    best = json.loads(out)["answers"][0]
    assert best["answer"] == "1889" and ESCAPES in best["meta"]["file_name"] and best["context"].startswith(ESCAPES)
    assert best["context"][best["context_start"] : best["context_end"]] == "1889"
    assert best["start"] == len(ESCAPES) + TOWER.index("1889"), "offsets count the escapes, as stored"


# -- models -----------------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_model_weights_that_would_run_code_are_refused_in_one_line(tiny_models, tmp_path):
    model = shutil.copytree(tiny_models["bert-uncased"], tmp_path / "model")
    (model / "model.safetensors").unlink()
    ran = tmp_path / "code-ran"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_RunsCode(ran), protocol=4))
    done = subprocess.run(
        [sys.executable, "-m", "corpusqa.pipelines.cli", "read", "--model", str(model), "-q", "Who?", "--context", "Ada."],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2 and not ran.exists()
    assert_one_line_error("read", done.stderr, f"{model}: refused to load its weights", "safetensors")
