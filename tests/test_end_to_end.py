"""The `corpusqa` command end to end, as a user runs it: index a folder of real files (and bad ones), ask
questions with the shipped reader and the default embedder, re-index, survive a kill -9, filter, re-rank.

The CLI runs in-process (`main([...])`) except where a process must be killed or its terminal output is
the point: there it is a subprocess. Questions are ones the shipped reader answers right on this corpus.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from corpus_fixtures import bad_corpus, good_corpus, paragraphs, small_files
from tiny_models import build_tiny_cross_encoder

from corpusqa.indexing.convert import convert
from corpusqa.indexing.indexer import IndexSettings
from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import RETRIEVERS, ask, load_query_pipeline, retrieve

#: (file, question, the shipped reader's answer, the page it stands on in a PDF)
QUESTIONS = [
    ("pdf", "Who built the first full-scale working railway steam locomotive?", "Richard Trevithick", 2),
    ("docx", "Who proved that air is necessary for combustion?", "Robert Boyle", None),
    ("docx", "What is the half-life of Oxygen-15?", "122 seconds", None),  # only the DOCX table says it
    ("html", "Which rockets did Apollo use as launch vehicles?", "Saturn family rockets", None),
    ("md", "Whose theory of continental drift did plate tectonics explain?", "Alfred Wegener", None),
    ("txt", "What is the biggest city on the river Rhine?", "Cologne", None),
    ("latin1", "Which king enlarged the Château de Versailles?", "Louis XIV", None),
]
RHINE_QUESTION = "What is the biggest city on the river Rhine?"
MORE_FILES = 2 * IndexSettings().commit_files + 8  # the kill lands after the first of three commits


def corpusqa(*argv) -> tuple[int, str, str]:
    """`corpusqa ARGV...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def corpusqa_process(*argv, **popen) -> subprocess.Popen:
    """`corpusqa ARGV...` as its own process."""
    return subprocess.Popen([sys.executable, "-m", "corpusqa.pipelines.cli", *map(str, argv)], text=True, **popen)


def ask_json(question: str, store: Path, *options) -> dict:
    """The answers as `corpusqa ask --json` prints them; threshold 0, so the top answer is the best span
    unless the reader rates "no answer" higher (the shipped reader's stored threshold abstains readily)."""
    code, out, err = corpusqa("ask", question, "--store", store, "--json", "--no-answer-threshold", 0, *options)
    assert code == 0, err
    return json.loads(out)


def stats_json(store: Path) -> dict:
    code, out, err = corpusqa("stats", "--store", store, "--json")
    assert code == 0, err
    return json.loads(out)


def index_summary(*argv) -> str:
    code, out, err = corpusqa("index", *argv)
    assert code == 0, err
    return out


def assert_consistent(store: Path) -> None:
    """Every passage belongs to a file record and both indexes cover every passage."""
    stats = stats_json(store)
    per_type = stats["file_types"].values()
    assert stats["passages"] == sum(t["passages"] for t in per_type)
    assert stats["bm25_passages"] == stats["dense_passages"] == stats["passages"]
    assert stats["files"] == sum(t["files"] for t in per_type)
    with EmbeddedDocumentStore(store) as opened:
        assert sum(record.passages for record in opened.files()) == stats["passages"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """The good files of every format, and bad files in bad/; the root folder is `corpus["root"]`."""
    root = tmp_path_factory.mktemp("corpus")
    return {"root": root, **good_corpus(root), **bad_corpus(root / "bad")}


@pytest.fixture(scope="module")
def indexed(corpus, tmp_path_factory) -> tuple[Path, str]:
    """The corpus indexed once by `corpusqa index`: (store, the printed summary). Tests read it or copy it."""
    store = tmp_path_factory.mktemp("indexed") / "store"
    return store, index_summary(corpus["root"], "--store", store)


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross_encoder"))


# -- indexing -------------------------------------------------------------------------------------------


def test_index_names_each_bad_file_with_its_reason_and_indexes_the_rest(corpus, indexed):
    store, summary = indexed
    assert summary.startswith("Indexed 6 files (") and ", skipped 0 unchanged, removed 0, failed 3, in " in summary
    for name, reason in [("empty", "empty file"), ("corrupt_pdf", "corrupt PDF ("), ("binary", "binary content")]:
        assert f"\n  failed: {corpus[name]}: {reason}" in summary
    # the bad files sort first (bad/...): the run went on past them to every good file, the Latin-1 one included
    stats = stats_json(store)
    assert stats["files"] == 6
    assert {kind: found["files"] for kind, found in stats["file_types"].items()} == {
        "docx": 1, "html": 1, "md": 1, "pdf": 1, "txt": 2,
    }  # fmt: skip


# -- asking -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "question", "expected", "page"), QUESTIONS, ids=[f"{q[0]}:{q[2]}" for q in QUESTIONS])
def test_ask_answers_from_each_format_with_offsets_into_passage_and_file(
    corpus, indexed, file, question, expected, page
):
    store, _ = indexed
    record = ask_json(question, store)
    assert record["question"] == question and not record["abstained"]
    best = record["answers"][0]
    assert best["answer"] == expected
    assert best["meta"]["file_name"] == corpus[file].name
    with EmbeddedDocumentStore(store) as opened:
        [passage] = opened.filter_documents({"field": "id", "operator": "==", "value": best["document_id"]})
    assert passage.content[best["start"] : best["end"]] == expected
    file_text = convert(corpus[file])[0].content  # the Latin-1 file's text decoded, as indexed
    assert file_text[best["file_start"] : best["file_end"]] == expected
    assert best.get("page") == page
    if page is not None:  # the answer's page, not its passage's: this passage starts on the page before
        assert best["meta"]["page_number"] == page - 1


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_each_retriever_ranks_the_passage_that_answers_first(indexed, retriever):
    store, _ = indexed
    question = "Whose theory of continental drift did plate tectonics explain?"
    record = ask_json(question, store, "--retriever", retriever, "--passages", 1)
    best = record["answers"][0]
    assert (best["answer"], best["meta"]["file_name"]) == ("Alfred Wegener", "geology.md")


def test_file_type_filter_keeps_answers_to_those_types(indexed):
    """Unfiltered, the DOCX answers this question (see QUESTIONS)."""
    store, _ = indexed
    question = "Who proved that air is necessary for combustion?"
    record = ask_json(question, store, "--file-type", "md", "--file-type", "html")
    found = {answer["meta"]["file_type"] for answer in record["answers"] if answer["answer"]}
    assert found and found <= {"md", "html"}


# -- re-indexing ------------------------------------------------------------------------------------------


def test_reindex_skips_unchanged_files_replaces_a_changed_one_and_prunes_a_deleted_one(tmp_path):
    files, store = good_corpus(tmp_path / "docs"), tmp_path / "store"
    index_summary(tmp_path / "docs", "--store", store)
    unchanged = index_summary(tmp_path / "docs", "--store", store)
    assert unchanged.startswith("Indexed 0 files (0 passages), skipped 5 unchanged")
    assert ask_json(RHINE_QUESTION, store)["answers"][0]["answer"] == "Cologne"

    files["txt"].write_text("\n\n".join(paragraphs("Amazon_rainforest", 3)) + "\n", encoding="utf-8")
    assert index_summary(tmp_path / "docs", "--store", store).startswith("Indexed 1 files (")
    best = ask_json("Which country contains the majority of the Amazon rainforest?", store)["answers"][0]
    assert (best["answer"], best["meta"]["file_name"]) == ("Brazil", "rhine.txt")
    assert "Cologne" not in json.dumps(ask_json(RHINE_QUESTION, store)), "the Rhine text is gone from every file"

    before = stats_json(store)
    files["html"].unlink()
    assert ", removed 0," in index_summary(tmp_path / "docs", "--store", store), "without --prune the file stays"
    assert "removed 1" in index_summary(tmp_path / "docs", "--store", store, "--prune")
    after = stats_json(store)
    assert "html" not in after["file_types"] and after["files"] == before["files"] - 1
    assert after["passages"] == before["passages"] - before["file_types"]["html"]["passages"]
    record = ask_json("Which rockets did Apollo use as launch vehicles?", store)
    assert all(answer["meta"]["file_name"] != "apollo.html" for answer in record["answers"] if answer["answer"])


def test_an_index_run_killed_mid_write_leaves_the_old_index_answering_and_a_rerun_finishes(corpus, indexed, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(indexed[0], store)
    more = small_files(tmp_path / "more", MORE_FILES)
    log = tmp_path / "killed-run.err"
    with EmbeddedDocumentStore(store) as watcher, log.open("w") as stderr:
        old_files = len(watcher.files())
        run = corpusqa_process("index", corpus["root"], tmp_path / "more", "--store", store,
                               stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        deadline = time.monotonic() + 300
        while len(watcher.files()) == old_files:  # until its first batch is committed
            assert run.poll() is None, f"the run ended before committing a batch: {log.read_text()}"
            assert time.monotonic() < deadline, "no batch committed in 5 minutes"
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        run.wait()
        kept = len(watcher.files())
    assert run.returncode == -signal.SIGKILL
    assert old_files < kept < old_files + len(more), "the kill must land mid-run, between commits"

    assert ask_json(RHINE_QUESTION, store)["answers"][0]["answer"] == "Cologne"
    assert_consistent(store)

    rerun = corpusqa_process("index", corpus["root"], tmp_path / "more", "--store", store,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert out.startswith(f"Indexed {old_files + len(more) - kept} files (") and f"skipped {kept} unchanged" in out
    # only our two progress bars reach the terminal: no library logs or bars of their own
    printed = [piece.strip() for piece in re.split(r"[\r\n]|\x1b\[A", err) if piece.strip()]
    assert printed and all(piece.startswith(("files:", "passages:")) for piece in printed), printed
    assert_consistent(store)
    assert stats_json(store)["files"] == old_files + len(more)


# -- quiet output -----------------------------------------------------------------------------------------


def test_ask_json_prints_json_alone_with_no_library_logs_or_bars(indexed, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(indexed[0], store)
    for folder in store.glob("bm25-*"):  # the store rebuilds its BM25 index, which bm25s logs at DEBUG
        shutil.rmtree(folder)
    done = corpusqa_process("ask", RHINE_QUESTION, "--store", store, "--json",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert json.loads(out)["question"] == RHINE_QUESTION
    assert not [line for line in err.splitlines() if re.match(r"\s*(DEBUG|INFO)\b", line)], err
    assert "it/s]" not in err, err


# -- re-ranking -------------------------------------------------------------------------------------------


def test_without_a_reranker_the_pipeline_has_no_ranker(indexed):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    for retriever in RETRIEVERS:
        pipeline = load_query_pipeline(retriever, indexed[0])
        assert not any(isinstance(c, SentenceTransformersSimilarityRanker) for _, c in pipeline.retrieval.walk())
        assert pipeline.feeder != "reranker"


def cross_encoder_order(model: Path, question: str, candidates) -> list[str]:
    """Passage ids best first by the cross-encoder's scores, computed here without Haystack."""
    from sentence_transformers import CrossEncoder

    scores = CrossEncoder(str(model)).predict([(question, passage.content) for passage in candidates])
    return [passage.id for _, passage in sorted(zip(scores, candidates, strict=True), key=lambda pair: -pair[0])]


def test_the_reader_reads_passages_in_the_rerankers_order(indexed, cross_encoder):
    store, _ = indexed
    question = "When did the Apollo program land the first humans on the Moon?"
    retrieved = retrieve(load_query_pipeline("bm25", store), question, 8)
    expected = cross_encoder_order(cross_encoder, question, retrieved)[:3]
    assert expected != [passage.id for passage in retrieved[:3]], "this ranker must change the order to be seen"

    result = ask(load_query_pipeline("bm25", store, reranker=cross_encoder, candidates=8), question, passages=3)
    assert [passage.id for passage in result.passages] == expected


def test_ask_reranker_feeds_the_reader_the_rankers_best_passages(indexed, cross_encoder):
    store, _ = indexed
    question = "Which rockets did Apollo use as launch vehicles?"
    retrieved = retrieve(load_query_pipeline("bm25", store), question, 50)  # the CLI re-ranks 50 candidates
    best = cross_encoder_order(cross_encoder, question, retrieved)[0]
    assert best != retrieved[0].id, "this ranker must change the top passage to be seen"

    record = ask_json(question, store, "--retriever", "bm25", "--reranker", cross_encoder, "--passages", 1)
    assert {answer["document_id"] for answer in record["answers"] if answer["answer"]} == {best}
