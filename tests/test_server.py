"""`corpusqa serve`: the HTTP API answers as `ask --json` does, under load and while an index run writes, with
its token, limits and docs; `corpusqa ask --server` asks it. The server runs on 127.0.0.1 with a tiny reader."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from corpus_fixtures import paragraphs, small_files

from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.pipelines.answers import TIMINGS, result_json
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import ask, load_query_pipeline
from corpusqa.server.app import create_app
from corpusqa.server.client import ServerError, call
from corpusqa.server.settings import ServerSettings

QUESTIONS = [
    "Who won Super Bowl 50?",
    "Where was Super Bowl 50 played?",
    "Which network broadcast the game?",
    "Who was the most valuable player?",
    "Which conference did the Denver Broncos win?",
    "What does the Amazon rainforest cover?",
    "Which country holds most of the rainforest?",
    "How many species of trees live there?",
]
TOKEN = "test-token-5b1c"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A BM25-only store of SQuAD paragraphs, one text file each."""
    root = tmp_path_factory.mktemp("served")
    files = small_files(root / "docs", 9)
    with EmbeddedDocumentStore(root / "store") as opened:
        index_paths(files, opened, embed=False, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def reader(tiny_models) -> dict:
    return {"model": str(tiny_models["bert-uncased"]), "device": "cpu", "dtype": "float32", "no_answer_threshold": 0.0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(settings: ServerSettings) -> Iterator[str]:
    """The API on a free port of 127.0.0.1, in a thread of this process: its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def settings_for(store: Path, reader: dict, **more) -> ServerSettings:
    return ServerSettings(store=store, retriever="bm25", reader=reader, **more)


def without_timings(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in TIMINGS}


@pytest.fixture(scope="module")
def expected(store, reader) -> dict[str, dict]:
    """Each question's record as `ask --json` makes it in this process, without its timings."""
    pipeline = load_query_pipeline("bm25", store, reader)
    return {question: without_timings(result_json(ask(pipeline, question))) for question in QUESTIONS}


def test_two_hundred_requests_eight_at_a_time_all_answer_as_in_process(store, reader, expected):
    with serving(settings_for(store, reader)) as url:
        asked = [QUESTIONS[number % len(QUESTIONS)] for number in range(200)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answered = list(pool.map(lambda question: call(url, "/ask", {"question": question}), asked))
    assert len(answered) == 200
    for question, record in zip(asked, answered):
        assert without_timings(record) == expected[question]
        assert record["seconds"] == pytest.approx(record["retrieval_seconds"] + record["reading_seconds"], abs=2e-4)


def test_questions_are_answered_while_an_index_run_writes_the_store(store, reader, tmp_path):
    copy = shutil.copytree(store, tmp_path / "store")
    incoming = tmp_path / "incoming"
    new_files = small_files(incoming, 120)
    with serving(settings_for(copy, reader, index_roots=(incoming,))) as url:
        with ThreadPoolExecutor(max_workers=9) as pool:
            indexing = pool.submit(call, url, "/index", {"paths": [str(incoming)]})
            records = list(pool.map(lambda n: call(url, "/ask", {"question": QUESTIONS[n % 8]}), range(80)))
            report = indexing.result()
        stats = call(url, "/stats")
    assert report["indexed"] == len(new_files) and report["failed"] == []
    assert all(record["answers"] and record["passages"] for record in records)
    assert stats["files"] == 9 + len(new_files)


def test_request_options_reach_the_reader_and_unknown_ones_are_refused_by_name(store, reader):
    with serving(settings_for(store, reader)) as url:
        two = call(url, "/ask", {"question": QUESTIONS[0], "top_k": 2, "max_answer_length": 3, "passages": 3})
        with pytest.raises(ServerError, match=r"topk"):
            call(url, "/ask", {"question": QUESTIONS[0], "topk": 2})
        with pytest.raises(ServerError, match=r"422.*question"):
            call(url, "/ask", {"question": ""})
    assert len(two["answers"]) <= 2 and len(two["passages"]) <= 3
    assert all(len(answer["answer"].split()) <= 3 for answer in two["answers"])


def test_only_health_and_the_docs_are_open_without_the_token(store, reader):
    with serving(settings_for(store, reader, token=TOKEN)) as url:
        assert call(url, "/health") == {"status": "ok"}
        schema = call(url, "/openapi.json")
        for route in ("/stats", "/index"):
            with pytest.raises(ServerError, match="401"):
                call(url, route, None if route == "/stats" else {"paths": ["/"]})
        with pytest.raises(ServerError, match="401"):
            call(url, "/ask", {"question": QUESTIONS[0]}, token="wrong")
        answered = call(url, "/ask", {"question": QUESTIONS[0]}, token=TOKEN)
        with urllib.request.urlopen(f"{url}/docs") as page:
            assert b"swagger" in page.read().lower()
    assert {"/ask", "/index", "/stats", "/health"} <= set(schema["paths"])
    assert set(schema["components"]["schemas"]["AskRequest"]["properties"]) >= {"question", "top_k", "no_answer_threshold"}
    assert answered["question"] == QUESTIONS[0]


def test_request_bodies_are_bounded(store, reader):
    with serving(settings_for(store, reader, max_upload_mb=1)) as url:
        with pytest.raises(ServerError, match="413"):
            call(url, "/ask", {"question": QUESTIONS[0], "padding": "x" * 100_000})
        over_file_limit = httpx.post(f"{url}/index", files={"files": ("big.txt", b"word " * 300_000)})
        over_request_limit = httpx.post(f"{url}/index", files={"files": ("big.txt", b"word " * 500_000)})
        streamed = httpx.post(f"{url}/ask", content=iter([b'{"question": "', b"x" * 70_000, b'"}']))
    assert over_file_limit.status_code == 200, "refused as the UI refuses it, with its reason"
    assert over_file_limit.json()["files"][0]["error"] == "1.4 MB is over the upload limit of 1 MB"
    assert over_request_limit.status_code == 413 and "limit" in over_request_limit.json()["detail"]
    assert streamed.status_code == 413, "a body without a length is bounded as it arrives"


def test_uploads_are_indexed_with_the_ui_s_rules_and_paths_only_under_allowed_roots(store, reader, tmp_path):
    copy = shutil.copytree(store, tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "note.txt").write_text("A note outside the allowed folders.", encoding="utf-8")
    rhine = "\n\n".join(paragraphs("Rhine", 2)).encode("utf-8")
    with serving(settings_for(copy, reader)) as url:
        sent = httpx.post(f"{url}/index", files=[("files", ("../../rhine.txt", rhine)), ("files", ("run.exe", b"MZ"))])
        refused = httpx.post(f"{url}/index", json={"paths": [str(elsewhere)]})
        answered = call(url, "/ask", {"question": "What is the biggest city on the river Rhine?"})
    indexed, executable = sent.json()["files"]
    assert sent.status_code == 200 and indexed["passages"] > 0 and indexed["error"] is None
    assert Path(indexed["path"]).parent == copy / "uploads" and Path(indexed["path"]).name == "rhine.txt"
    assert executable["error"].startswith("'.exe' files cannot be indexed")
    assert refused.status_code == 403 and "--index-root" in refused.json()["detail"]
    assert any(passage["meta"]["file_name"] == "rhine.txt" for passage in answered["passages"])


def test_ask_server_prints_what_the_server_answers(store, reader, expected, capsys, monkeypatch):
    monkeypatch.setenv("CORPUSQA_TOKEN", TOKEN)
    with serving(settings_for(store, reader, token=TOKEN)) as url:
        assert main(["ask", QUESTIONS[0], "--server", url, "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert main(["ask", QUESTIONS[0], "--server", url]) == 0
        text = capsys.readouterr().out
        monkeypatch.setenv("CORPUSQA_TOKEN", "wrong")
        assert main(["ask", QUESTIONS[0], "--server", url]) == 2
    assert without_timings(record) == expected[QUESTIONS[0]]
    assert text.startswith(f"Q: {QUESTIONS[0]}   (retrieval ") and record["answers"][0]["source"] in text
    assert "401" in capsys.readouterr().err


def test_ask_server_names_a_server_it_cannot_reach(capsys):
    assert main(["ask", "Who?", "--server", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "cannot reach http://127.0.0.1:" in capsys.readouterr().err


def test_corpusqa_serve_loads_once_answers_and_never_shows_its_token(store, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "corpusqa.pipelines.cli", "serve", "--store", str(store), "--port", str(port),
         "--retriever", "bm25", "--token-file", str(token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                call(url, "/health", timeout=5)
                break
            except ServerError:
                assert server.poll() is None and time.monotonic() < deadline, "corpusqa serve did not start"
                time.sleep(0.2)
        record = call(url, "/ask", {"question": QUESTIONS[0]}, token=TOKEN)
        with pytest.raises(ServerError, match="401"):
            call(url, "/ask", {"question": QUESTIONS[0]}, token=TOKEN[::-1])
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert record["answers"] and record["reading_seconds"] < 5, "the models were loaded before the first question"
    assert f"http://localhost:{port}" in output and "Finished server process" in output, "stopped cleanly"
    assert TOKEN not in output and TOKEN[::-1] not in output


# -- a store without embeddings, a store that cannot answer -----------------------------------------------


def test_a_store_without_embeddings_answers_with_bm25_says_so_and_refuses_dense_by_name(store, reader, expected,
                                                                                        caplog):
    with serving(ServerSettings(store=store, reader=reader)) as url:  # the default retriever: hybrid
        record = call(url, "/ask", {"question": QUESTIONS[0]})
        refused = [httpx.post(f"{url}/ask", json={"question": QUESTIONS[0], "retriever": name})
                   for name in ("dense", "hybrid")]  # fmt: skip
    note = f"the store at {store} has no embeddings (indexed with --no-embed): answering with BM25"
    assert record.pop("note") == note
    assert without_timings(record) == expected[QUESTIONS[0]], "BM25's answers"
    assert f"corpusqa serve: {note}" in caplog.messages, "and the server's log says so"
    for response in refused:
        assert response.status_code == 400
        assert "has no embeddings" in response.json()["detail"] and '"retriever": "bm25"' in response.json()["detail"]


def test_a_store_that_lost_its_database_answers_503_naming_the_store_and_repair_until_repaired(store, reader,
                                                                                              tmp_path):
    copy = shutil.copytree(store, tmp_path / "store")
    for file in copy.glob("store.sqlite3*"):
        file.unlink()
    with serving(settings_for(copy, reader)) as url:  # it starts, and says why it cannot answer
        health = httpx.get(f"{url}/health")
        broken = [httpx.post(f"{url}/ask", json={"question": QUESTIONS[0]}), httpx.get(f"{url}/stats")]
        assert main(["store", "repair", "--store", str(copy)]) == 0
        mended = call(url, "/stats")
    assert health.status_code == 200
    for response in broken:
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert f"store {copy}: " in detail and "without their database" in detail
        assert f"corpusqa store repair --store {copy}" in detail
    assert mended["files"] == 0, "repair left an empty store, served without a restart"
