"""The `corpusqa` command end to end, as a user runs it: index a folder of real files (and bad ones), ask
questions with the shipped reader and the default embedder, re-index, survive a kill -9, filter, re-rank.

The CLI runs in-process (`main([...])`) except where a process must be killed or its terminal output is
the point: there it is a subprocess. Questions are ones the shipped reader answers right on this corpus.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
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
    ("txt", "What is the biggest city on the river Rhine?", "Cologne, Germany", None),
    ("latin1", "Which king enlarged the Château de Versailles?", "Louis XIV", None),
]
RHINE_QUESTION = "What is the biggest city on the river Rhine?"
RHINE_ANSWER = "Cologne, Germany"
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
    assert summary.startswith("Indexed 6 files (") and ", skipped 0 unchanged, removed 0, failed 3, left out 0, in " in summary
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


def test_ask_reads_in_the_dtype_asked_for_int8_included(indexed, monkeypatch):
    from corpusqa.reader import component

    loaded = []
    real_load = component.load_reader_model
    monkeypatch.setattr(component, "load_reader_model", lambda *a, **k: loaded.append(k["dtype"]) or real_load(*a, **k))
    store, _ = indexed
    question = "Whose theory of continental drift did plate tectonics explain?"
    records = {dtype: ask_json(question, store, "--retriever", "bm25", "--dtype", dtype) for dtype in ("float32", "int8")}
    assert loaded == ["float32", "int8"]
    assert records["int8"]["answers"][0]["answer"] == records["float32"]["answers"][0]["answer"] == "Alfred Wegener"


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
    assert ask_json(RHINE_QUESTION, store)["answers"][0]["answer"] == RHINE_ANSWER

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

    assert ask_json(RHINE_QUESTION, store)["answers"][0]["answer"] == RHINE_ANSWER
    assert_consistent(store)

    rerun = corpusqa_process("index", corpus["root"], tmp_path / "more", "--store", store,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert out.startswith(f"Indexed {old_files + len(more) - kept} files (") and f"skipped {kept} unchanged" in out
    assert err == "", "stderr is no terminal: no bars of ours, and no library logs or bars of their own"
    assert_consistent(store)
    assert stats_json(store)["files"] == old_files + len(more)


#: Forks an index run (BM25 only, a commit every two files) for each folder named on its stdin, prints the
#: run's pid, then its wait status once it ends, finished or killed: a forked run starts in milliseconds,
#: where a new process spends ~10 s importing, so twenty runs are quick.
_INDEX_RUNNER = """
import os, sys
from corpusqa.indexing.indexer import IndexSettings, index_paths
from corpusqa.indexing.store import EmbeddedDocumentStore

settings = IndexSettings(commit_files=2)
print("ready", flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        with EmbeddedDocumentStore(sys.argv[1]) as store:
            index_paths([line.strip()], store, settings=settings, embed=False, progress=False)
        os._exit(0)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""
KILL_QUESTIONS = [RHINE_QUESTION, "Whose theory of continental drift did plate tectonics explain?"]
FILLER_WORDS = ["zorblax", "quorple", "fendip", "wimbrel", "tarnish", "glomber", "prentice", "oxlip", "vantage"]


def filler_files(folder: Path, count: int, seed: int) -> Path:
    """``count`` files of made-up words that no question shares, so the answers must not change."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for number in range(count):
        words = [f"{rng.choice(FILLER_WORDS)}{rng.randint(0, 999)}" for _ in range(120)]
        (folder / f"filler-{number:02}.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return folder


def top_answer(record: dict) -> dict:
    """What must not change: the best answer, its text, passage and offsets (its score follows the passages
    read, whose BM25 scores follow the corpus's statistics)."""
    return {key: value for key, value in record["answers"][0].items() if key != "score"}


def answered(log: Path) -> list[dict]:
    """The records the asker has written so far, whole lines only."""
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines(keepends=True) if line.endswith("\n")]


def test_index_runs_killed_twenty_times_while_another_process_asks_never_change_an_answer(corpus, tmp_path):
    clean = tmp_path / "clean"
    index_summary(corpus["root"], "--store", clean, "--no-embed")
    live = shutil.copytree(clean, tmp_path / "live")
    once = tmp_path / "once.txt"
    once.write_text("\n".join(KILL_QUESTIONS) + "\n", encoding="utf-8")
    code, out, err = corpusqa("ask", "--questions", once, "--store", clean, "--retriever", "bm25")
    assert code == 0, err
    expected = {record["question"]: top_answer(record) for record in map(json.loads, out.splitlines())}
    assert [answer["answer"] for answer in expected.values()] == [RHINE_ANSWER, "Alfred Wegener"]

    many = tmp_path / "many.txt"
    many.write_text("\n".join(KILL_QUESTIONS * 2000) + "\n", encoding="utf-8")
    log, asker_errors = tmp_path / "asked.jsonl", tmp_path / "asker.err"
    with log.open("w") as sink, asker_errors.open("w") as errors:
        asker = corpusqa_process("ask", "--questions", many, "--store", live, "--retriever", "bm25", stdout=sink,
                                 stderr=errors, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    runner = subprocess.Popen([sys.executable, "-c", _INDEX_RUNNER, str(live)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    statuses = []
    try:
        assert runner.stdout.readline() == "ready\n"
        # One run left whole measures how long a run takes on this machine, so the kills land within runs.
        started = time.monotonic()
        runner.stdin.write(f"{filler_files(tmp_path / 'filler-whole', 30, 99)}\n")
        runner.stdin.flush()
        runner.stdout.readline()
        assert int(runner.stdout.readline()) == 0
        duration = time.monotonic() - started
        whole = stats_json(live)["files"]
        timing = random.Random(14)
        for run in range(20):
            asked = len(answered(log))
            runner.stdin.write(f"{filler_files(tmp_path / f'filler-{run}', 30, run)}\n")
            runner.stdin.flush()
            pid = int(runner.stdout.readline())
            time.sleep(timing.uniform(0.02, 0.8) * duration)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            statuses.append(int(runner.stdout.readline()))
            deadline = time.monotonic() + 300
            while len(answered(log)) <= asked:  # every kill lands while the asker asks
                assert asker.poll() is None, asker_errors.read_text()
                assert time.monotonic() < deadline, "the asker answered nothing in 5 minutes"
                time.sleep(0.05)
    finally:
        runner.stdin.close()
        runner.wait(timeout=60)
        asker.kill()
        asker.wait()

    records = answered(log)
    assert len(records) >= 20
    for record in records:
        assert top_answer(record) == expected[record["question"]], record
    assert sum(status == signal.SIGKILL for status in statuses) >= 10, f"most runs must die mid-run: {statuses}"
    stats = stats_json(live)
    assert stats["files"] > whole, "no killed run committed a batch: the test proved nothing"
    assert stats["bm25_passages"] == stats["passages"] == sum(t["passages"] for t in stats["file_types"].values())


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
