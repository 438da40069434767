"""Latency of a question asked of `corpusqa serve` against the same question asked in process.

    python benchmarks/server_latency.py [--data ../shared/squad/dev-v1.1.json] [--articles 4] [--questions 200]

Indexes the paragraphs of the first ``--articles`` articles of a SQuAD file into a fresh store, one file per
paragraph, and asks their first ``--questions`` questions, warm (models loaded, one question asked first):
each question in this process (what `corpusqa ask` does per question once loaded: ``ask``, then its JSON)
and then over HTTP to `corpusqa serve` on 127.0.0.1, one after the other, so that both see the same load;
then all of them again over HTTP, 4 at a time. Prints p50/p95 in milliseconds, and questions per second.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no model-loading bars between the tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "squad" / "dev-v1.1.json")
    parser.add_argument("--articles", type=int, default=4)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--retriever", default="hybrid", choices=("bm25", "dense", "hybrid"))
    args = parser.parse_args()

    articles = json.loads(args.data.read_text(encoding="utf-8"))["data"][: args.articles]
    questions = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]][: args.questions]
    with tempfile.TemporaryDirectory() as work:
        docs, store = Path(work) / "docs", Path(work) / "store"
        docs.mkdir()
        paragraphs = [p["context"] for a in articles for p in a["paragraphs"]]
        for number, text in enumerate(paragraphs):
            (docs / f"paragraph-{number:04}.txt").write_text(text, encoding="utf-8")
        cli = [sys.executable, "-m", "corpusqa.pipelines.cli"]
        subprocess.run([*cli, "index", str(docs), "--store", str(store), "--quiet"], check=True, capture_output=True)

        port = free_port()
        server = subprocess.Popen(
            [*cli, "serve", "--store", str(store), "--port", str(port), "--retriever", args.retriever],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = wait_for(f"http://127.0.0.1:{port}", server)
            in_process, one = ask_both(store, args.retriever, url, questions)
            four = ask_server(url, questions, workers=4)
        finally:
            server.terminate()
            server.wait()

    print(f"{len(questions)} questions over {len(paragraphs)} paragraphs ({args.articles} SQuAD articles), "
          f"retriever {args.retriever}, warm\n")  # fmt: skip
    print("| way | p50 ms | p95 ms | questions/s |")
    print("|---|---:|---:|---:|")
    for name, (seconds, wall) in [("in process (ask)", in_process), ("HTTP, 1 at a time", one), ("HTTP, 4 at a time", four)]:
        print(f"| {name} | {percentile(seconds, 50):.0f} | {percentile(seconds, 95):.0f} | {len(seconds) / wall:.1f} |")


def ask_both(store: Path, retriever: str, url: str, questions: list[str]) -> tuple[tuple, tuple]:
    """Each question in this process, then over HTTP: (seconds, wall time) for each way."""
    from corpusqa.pipelines.answers import result_json
    from corpusqa.pipelines.query import ask, load_query_pipeline
    from corpusqa.server.client import call

    pipeline = load_query_pipeline(retriever, store)
    result_json(ask(pipeline, questions[0]))  # warm-up: models load on first use
    call(url, "/ask", {"question": questions[0]})
    here, there = [], []
    for question in questions:
        began = time.perf_counter()
        json.dumps(result_json(ask(pipeline, question)))
        here.append(time.perf_counter() - began)
        began = time.perf_counter()
        call(url, "/ask", {"question": question})
        there.append(time.perf_counter() - began)
    return (here, sum(here)), (there, sum(there))


def ask_server(url: str, questions: list[str], workers: int) -> tuple[list[float], float]:
    from corpusqa.server.client import call

    def timed(question: str) -> float:
        began = time.perf_counter()
        call(url, "/ask", {"question": question})
        return time.perf_counter() - began

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        seconds = list(pool.map(timed, questions))
    return seconds, time.perf_counter() - started


def wait_for(url: str, server: subprocess.Popen) -> str:
    from corpusqa.server.client import ServerError, call

    while True:
        try:
            call(url, "/health", timeout=5)
            return url
        except ServerError:
            if server.poll() is not None:
                raise SystemExit("corpusqa serve ended before it answered") from None
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(seconds: list[float], percent: int) -> float:
    return statistics.quantiles([s * 1000 for s in seconds], n=100, method="inclusive")[percent - 1]


if __name__ == "__main__":
    main()
