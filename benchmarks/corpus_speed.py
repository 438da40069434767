"""Corpus indexing and question answering: corpusqa vs a plain Haystack 3 pipeline, on the SQuAD corpus.

The corpus is every distinct paragraph of SQuAD train-v1.1 and dev-v1.1 (20,958 of 20,963), written as one UTF-8 text
file each (one folder per article), so both systems index real files. Questions are a seeded sample of
dev-v1.1, asked one at a time, as a user asks them.

    python benchmarks/corpus_speed.py [--questions 300] [--passages 10] [--work DIR] [--files N]
        [--deny-amx] [--isa AVX2]

``--deny-amx`` and ``--isa`` run every phase as on a CPU without AMX, as in reader_speed.py.

Systems, each phase in its own process so peak memory is its own:
- corpusqa: `index_paths` into the embedded store (SQLite + bm25s + FAISS), run twice (the second run finds
  every file unchanged), and once without embeddings; queries through the shipped query YAMLs (bm25, dense,
  hybrid) with the shipped reader (dtype auto: bf16 on AMX CPUs and CUDA).
- haystack: TextFileToDocument -> DocumentSplitter (150 words, overlap 20, as ours) ->
  SentenceTransformersDocumentEmbedder (the same all-MiniLM-L6-v2) -> DocumentWriter(InMemoryDocumentStore);
  it has no notion of unchanged files (a second run redoes the first's work, so its row repeats the first's);
  queries through InMemoryBM25Retriever -> transformers-haystack's TransformersExtractiveReader with the same
  reader weights in float32 (its default dtype on CPU).

Latency is per question: retrieval alone (top 10) and retrieval + reading of the top `--passages` passages.
EM/F1 score each pipeline's best span with the official SQuAD 1.1 metric (both are told every question has
an answer: ours reports its best span, Haystack's runs with no_answer=False).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from reader_speed import isa_caps

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "squad"
DENY_AMX = Path(__file__).with_name("deny_amx.py")
PHASES = ("corpusqa-index", "haystack-index", "corpusqa-query", "haystack-query")
SPLIT_WORDS, SPLIT_OVERLAP = 150, 20


# --------------------------------------------------------------------------- the workload


def write_corpus(folder: Path, limit: int | None = None) -> int:
    """Each distinct dev+train paragraph (the first ``limit``: dev's come first) as folder/<article>/<n>.txt;
    returns the number of files."""
    from corpusqa.pipelines.open_eval import squad_passages
    from corpusqa.reader.squad_metric import load_squad

    passages = squad_passages([load_squad(SQUAD / "dev-v1.1.json"), load_squad(SQUAD / "train-v1.1.json")])[:limit]
    counts: dict[str, int] = {}
    for passage in passages:
        article = re.sub(r"[^A-Za-z0-9_-]+", "_", passage.meta["title"])[:80]
        counts[article] = counts.get(article, 0) + 1
        path = folder / article / f"{counts[article]:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(passage.content, encoding="utf-8")
    return len(passages)


def sample_questions(n: int, seed: int = 0) -> list[dict]:
    from corpusqa.reader.squad_metric import load_squad

    examples = load_squad(SQUAD / "dev-v1.1.json").examples
    return [{"question": e.question, "gold": list(e.answers)} for e in random.Random(seed).sample(examples, n)]


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(values: list[float]) -> dict[str, float]:
    return {"p50_ms": 1000 * float(np.percentile(values, 50)), "p95_ms": 1000 * float(np.percentile(values, 95))}


def scores(predictions: list[str], questions: list[dict]) -> dict[str, float]:
    from corpusqa.reader.squad_metric import exact_match, f1

    em = [max(exact_match(p, g) for g in q["gold"]) for p, q in zip(predictions, questions)]
    f = [max(f1(p, g, "1.1") for g in q["gold"]) for p, q in zip(predictions, questions)]
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f))}


# --------------------------------------------------------------------------- the phases, one per process


def corpusqa_index(work: Path) -> dict:
    from corpusqa.indexing.indexer import index_paths
    from corpusqa.indexing.store import EmbeddedDocumentStore

    for folder in ("store", "store-bm25"):
        shutil.rmtree(work / folder, ignore_errors=True)
    runs = {}
    for name, folder, embed in (("first", "store", True), ("second", "store", True), ("no_embed", "store-bm25", False)):
        with EmbeddedDocumentStore(work / folder) as store:
            report = index_paths([work / "corpus"], store, embed=embed, progress=False)
        runs[name] = {"seconds": report.seconds, "passages": report.passages, "indexed": report.indexed, "skipped": report.skipped}
    runs["first"]["store_mb"] = folder_mb(work / "store")
    runs["no_embed"]["store_mb"] = folder_mb(work / "store-bm25")
    return runs


def haystack_indexing_pipeline(store, embed: bool):
    from haystack import Pipeline
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.types import DuplicatePolicy
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder

    from corpusqa.indexing.embedding import DEFAULT_EMBEDDER, local_model_path

    pipeline = Pipeline()
    pipeline.add_component("converter", TextFileToDocument())
    pipeline.add_component("splitter", DocumentSplitter(split_by="word", split_length=SPLIT_WORDS, split_overlap=SPLIT_OVERLAP))
    pipeline.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    pipeline.connect("converter", "splitter")
    if embed:
        embedder = SentenceTransformersDocumentEmbedder(
            model=local_model_path(DEFAULT_EMBEDDER), normalize_embeddings=True, progress_bar=False
        )
        pipeline.add_component("embedder", embedder)
        pipeline.connect("splitter", "embedder")
        pipeline.connect("embedder", "writer")
    else:
        pipeline.connect("splitter", "writer")
    return pipeline


def haystack_index(work: Path) -> dict:
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    files = sorted(str(p) for p in (work / "corpus").rglob("*.txt"))
    runs = {}
    store = InMemoryDocumentStore()
    for name, embed in (("first", True), ("no_embed", False)):
        if name == "no_embed":
            store = InMemoryDocumentStore()
        pipeline = haystack_indexing_pipeline(store, embed)
        started = time.perf_counter()
        written = pipeline.run({"converter": {"sources": files}})["writer"]["documents_written"]
        runs[name] = {"seconds": time.perf_counter() - started, "passages": written}
    return runs


def corpusqa_query(work: Path, questions: list[dict], passages: int) -> dict:
    from dataclasses import replace

    from corpusqa.pipelines.open_eval import best_span
    from corpusqa.pipelines.query import RETRIEVERS, ask, load_query_pipeline, retrieve

    rows = {}
    for retriever in RETRIEVERS:
        pipeline = load_query_pipeline(retriever, work / "store")
        one_answer = replace(pipeline.reader.options, top_k=1)
        ask(pipeline, questions[0]["question"], passages, options=one_answer)  # warm-up: models load on first use
        alone, asked, predictions = [], [], []
        for q in questions:
            started = time.perf_counter()
            retrieve(pipeline, q["question"], 10)
            alone.append(time.perf_counter() - started)
        for q in questions:
            result = ask(pipeline, q["question"], passages, options=one_answer)
            asked.append(result.seconds)
            predictions.append(best_span(result.answers))
        rows[retriever] = {"retrieval": latency(alone), "with_reader": latency(asked), **scores(predictions, questions)}
    return rows


def haystack_query(work: Path, questions: list[dict], passages: int, model: str) -> dict:
    import torch
    from haystack import Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    store = InMemoryDocumentStore()
    files = sorted(str(p) for p in (work / "corpus").rglob("*.txt"))
    haystack_indexing_pipeline(store, embed=False).run({"converter": {"sources": files}})
    retriever = InMemoryBM25Retriever(store, top_k=10)
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(store, top_k=passages))
    reader = TransformersExtractiveReader(model=model, top_k=1, no_answer=False, model_kwargs={"dtype": torch.float32})
    pipeline.add_component("reader", reader)
    pipeline.connect("retriever.documents", "reader.documents")
    pipeline.run({"retriever": {"query": questions[0]["question"]}, "reader": {"query": questions[0]["question"]}})
    alone, asked, predictions = [], [], []
    for q in questions:
        started = time.perf_counter()
        retriever.run(query=q["question"])
        alone.append(time.perf_counter() - started)
    for q in questions:
        started = time.perf_counter()
        answers = pipeline.run({"retriever": {"query": q["question"]}, "reader": {"query": q["question"]}})["reader"]["answers"]
        asked.append(time.perf_counter() - started)
        predictions.append(answers[0].data if answers and answers[0].data else "")
    return {"bm25": {"retrieval": latency(alone), "with_reader": latency(asked), **scores(predictions, questions)}}


def run_phase(phase: str, work: Path, questions: int, passages: int, model: str) -> dict:
    asked = sample_questions(questions)
    if phase == "corpusqa-index":
        result = corpusqa_index(work)
    elif phase == "haystack-index":
        result = haystack_index(work)
    elif phase == "corpusqa-query":
        result = corpusqa_query(work, asked, passages)
    else:
        result = haystack_query(work, asked, passages, model)
    return {"phase": phase, "peak_rss_mb": peak_rss_mb(), "result": result}


# --------------------------------------------------------------------------- the tables


def print_tables(results: dict, files: int, questions: int, passages: int, cpu: str = "") -> None:
    ours, theirs = results["corpusqa-index"]["result"], results["haystack-index"]["result"]
    threads = os.environ.get("OMP_NUM_THREADS", os.cpu_count())
    print(f"\nIndexing {files:,} text files (SQuAD dev+train paragraphs), {threads} threads{cpu}\n")
    print(f"{'system':<10}{'run':<22}{'passages':>9}{'seconds':>9}{'passages/s':>11}{'vs haystack':>12}{'store MB':>10}{'peak RSS MB':>12}")
    theirs["second"] = theirs["first"]  # it has no notion of unchanged files: a second run redoes everything
    for label, key in (("first, embedded", "first"), ("second, unchanged", "second"), ("no embeddings", "no_embed")):
        for system, runs in (("corpusqa", ours), ("haystack", theirs)):
            run = runs[key]
            rate = run["passages"] / run["seconds"] if run["passages"] else float("nan")
            versus = theirs[key]["seconds"] / run["seconds"]
            size = f"{run['store_mb']:>10.0f}" if "store_mb" in run else f"{'(memory)':>10}"
            rss = results[f"{system}-index"]["peak_rss_mb"]
            print(f"{system:<10}{label:<22}{run['passages']:>9,}{run['seconds']:>9.1f}{rate:>11.0f}{versus:>11.2f}x{size}{rss:>12.0f}")
    print(f"\ncorpusqa's second run over the unchanged corpus: {ours['first']['seconds'] / ours['second']['seconds']:.1f}x faster than its first")

    q_ours, q_theirs = results["corpusqa-query"], results["haystack-query"]
    base = q_theirs["result"]["bm25"]
    print(f"\n{questions} dev-v1.1 questions, one at a time; the reader reads the top {passages} passages\n")
    print(f"{'system':<20}{'retrieval p50/p95 ms':>22}{'+ reader p50/p95 ms':>22}{'vs haystack':>12}{'EM':>7}{'F1':>7}{'peak RSS MB':>12}")
    rows = [(f"corpusqa {name}", row, q_ours["peak_rss_mb"]) for name, row in q_ours["result"].items()]
    rows.append(("haystack bm25", base, q_theirs["peak_rss_mb"]))
    for label, row, rss in rows:
        r, a = row["retrieval"], row["with_reader"]
        print(
            f"{label:<20}{r['p50_ms']:>12.1f} / {r['p95_ms']:<7.1f}{a['p50_ms']:>12.0f} / {a['p95_ms']:<7.0f}"
            f"{base['with_reader']['p50_ms'] / a['p50_ms']:>11.2f}x{row['em']:>7.1f}{row['f1']:>7.1f}{rss:>12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--passages", type=int, default=10)
    parser.add_argument("--work", type=Path, help="folder for the corpus and stores (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--files", type=int, help="index only the first N paragraphs (dev's first, so every question "
                        "keeps its own; default: all 20,958)")
    parser.add_argument("--deny-amx", action="store_true", help="run every phase as on a CPU without AMX")
    parser.add_argument("--isa", help="cap oneDNN and MKL at this instruction set for every phase: AVX2, ...")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    if args.phase:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        result = run_phase(args.phase, args.work, args.questions, args.passages, args.model)
        args.result.write_text(json.dumps(result))
        return

    from corpusqa.models import BUILTIN_READERS, DEFAULT_READER

    model = str(BUILTIN_READERS[DEFAULT_READER])
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        files = write_corpus(work / "corpus", args.files) if not (work / "corpus").is_dir() else sum(1 for _ in (work / "corpus").rglob("*.txt"))
        results = {}
        for phase in PHASES:
            path = work / f"{phase}.json"
            prefix = [sys.executable, str(DENY_AMX)] if args.deny_amx else []
            command = prefix + [sys.executable, __file__, "--phase", phase, "--work", str(work), "--result", str(path),
                       "--questions", str(args.questions), "--passages", str(args.passages), "--model", model]
            started = time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, **isa_caps(args.isa)} if args.isa else None)
            print(f"{phase}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
            results[phase] = json.loads(path.read_text())
        if args.json:
            args.json.write_text(json.dumps({"files": files, **results}, indent=2))
        cpu = (", AMX denied" if args.deny_amx else "") + (f", oneDNN and MKL capped at {args.isa}" if args.isa else "")
        print_tables(results, files, args.questions, args.passages, cpu)


if __name__ == "__main__":
    main()
