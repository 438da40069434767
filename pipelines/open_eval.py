"""Open-domain evaluation: every SQuAD paragraph is a passage of its article; every question goes through the
full query pipeline (retrieval, then the reader), as users run it.

Retrieval recall@k counts a question when a retrieved passage contains one of its gold answer texts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from haystack import Document
from tqdm.auto import tqdm

from corpusqa.indexing.indexer import IndexSettings, bulk
from corpusqa.reader.core import read
from corpusqa.reader.squad_metric import SquadDataset, SquadExample, evaluate

from .query import ask, load_query_pipeline, retrieve

RECALL_AT = (1, 5, 10, 20)


def squad_passages(datasets: Sequence[SquadDataset]) -> list[Document]:
    """Each distinct paragraph once, as a passage of its article (duplicates across files are merged)."""
    passages: dict[str, Document] = {}
    for dataset in datasets:
        for example in dataset.examples:
            key = hashlib.sha256(f"{example.title}\n{example.context}".encode()).hexdigest()
            if key not in passages:
                meta = {"title": example.title, "file_name": example.title, "file_type": "squad", "file_path": example.title}
                passages[key] = Document(id=key, content=example.context, meta=meta)
    return list(passages.values())


def index_passages(store, passages: list[Document], embed: bool = True, progress: bool = True) -> None:
    """Write passages (embedded with the indexing pipeline's embedder) in committed batches."""
    embedder = IndexSettings().embedder() if embed else None
    if embedder is not None:
        embedder.warm_up()
    batch = 1000
    with bulk(store):
        for begin in tqdm(range(0, len(passages), batch), desc="indexing", unit="batch", disable=not progress):
            chunk = passages[begin : begin + batch]
            if embedder is not None:
                chunk = embedder.run(chunk)["documents"]
            store.write_documents(chunk)


def evaluate_open(
    examples: Sequence[SquadExample],
    retriever: str,
    store: str | Path,
    passages: int = 10,
    reader: dict | None = None,
    progress: bool = True,
    latency_sample: int = 200,
) -> dict[str, float]:
    """Recall@1/5/10/20 of retrieval, EM/F1 of the pipeline's top answer, and latency.

    Every question is retrieved one at a time (that is the retrieval latency); the reader then reads each
    question's top ``passages`` in batches across questions, which gives the same answers as asking one by
    one, only faster. End-to-end latency is what ``ask`` takes, one question at a time, on the first
    ``latency_sample`` questions.
    """
    pipeline = load_query_pipeline(retriever, store, reader)
    depth = max(max(RECALL_AT), passages)
    hits = np.zeros(len(RECALL_AT))
    retrieval_seconds, to_read = [], []
    for example in tqdm(examples, desc=f"retrieving ({retriever})", unit="question", disable=not progress):
        started = time.perf_counter()
        found = retrieve(pipeline, example.question, depth)
        retrieval_seconds.append(time.perf_counter() - started)
        rank = next((i for i, d in enumerate(found) if any(a in d.content for a in example.answers)), None)
        hits += [rank is not None and rank < k for k in RECALL_AT]
        to_read.append(found[:passages])
    started = time.perf_counter()
    options = replace(pipeline.reader.options, top_k=1)
    answers = read(pipeline.reader.loaded, [e.question for e in examples], to_read, options, progress=progress)
    reading_seconds = time.perf_counter() - started
    predictions = {e.id: best_span(ranked) for e, ranked in zip(examples, answers)}
    metrics = evaluate(SquadDataset(version="1.1", examples=list(examples)), predictions)
    total_seconds = [ask(pipeline, e.question, passages, answers=1).seconds for e in examples[:latency_sample]]
    out = {f"recall@{k}": 100 * h / len(examples) for k, h in zip(RECALL_AT, hits)}
    out.update(exact=metrics["exact"], f1=metrics["f1"], total=len(examples))
    for name, values in (("retrieval", retrieval_seconds), ("end_to_end", total_seconds)):
        out[f"{name}_p50_ms"] = 1000 * float(np.percentile(values, 50))
        out[f"{name}_p95_ms"] = 1000 * float(np.percentile(values, 95))
    out["batched_questions_per_s"] = len(examples) / (sum(retrieval_seconds) + reading_seconds)
    return out


def best_span(answers) -> str:
    """The top span even where the reader would abstain: every SQuAD 1.1 question has an answer, and open-domain
    results (BERTserini's among them) are scored on the best span."""
    return next((a.data for a in answers if a.data is not None), "")
