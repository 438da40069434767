"""Open-domain evaluation: every SQuAD paragraph is a passage of its article; every question goes through the
full query pipeline (retrieval, then the reader), as users run it.

Retrieval recall@k counts a question when a retrieved passage contains one of its gold answer texts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from haystack import Document, Pipeline
from tqdm.auto import tqdm

from corpusqa.indexing.indexer import IndexSettings
from corpusqa.reader.component import ExtractiveReader
from corpusqa.reader.squad_metric import SquadDataset, SquadExample, evaluate

from .query import ask, load_query_pipeline, pipeline_inputs

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
) -> dict[str, float]:
    """Recall@1/5/10/20 of retrieval alone, EM/F1 of the pipeline's top answer, and per-question latency."""
    pipeline = load_query_pipeline(retriever, store, reader)
    retrieval = _without_reader(load_query_pipeline(retriever, store, reader))
    hits = np.zeros(len(RECALL_AT))
    retrieval_seconds, total_seconds, predictions = [], [], {}
    for example in tqdm(examples, desc=f"asking ({retriever})", unit="question", disable=not progress):
        started = time.perf_counter()
        found = ask_retrieval(retrieval, example.question, max(RECALL_AT))
        retrieval_seconds.append(time.perf_counter() - started)
        rank = next((i for i, d in enumerate(found) if any(a in d.content for a in example.answers)), None)
        hits += [rank is not None and rank < k for k in RECALL_AT]
        result = ask(pipeline, example.question, passages=passages, answers=1)
        total_seconds.append(result.seconds)
        best = next((a for a in result.answers if a.data is not None), None)
        predictions[example.id] = best.data if best else ""
    metrics = evaluate(SquadDataset(version="1.1", examples=list(examples)), predictions)
    out = {f"recall@{k}": 100 * h / len(examples) for k, h in zip(RECALL_AT, hits)}
    out.update(exact=metrics["exact"], f1=metrics["f1"], total=len(examples))
    for name, values in (("retrieval", retrieval_seconds), ("end_to_end", total_seconds)):
        out[f"{name}_p50_ms"] = 1000 * float(np.percentile(values, 50))
        out[f"{name}_p95_ms"] = 1000 * float(np.percentile(values, 95))
    return out


def _without_reader(pipeline: Pipeline) -> Pipeline:
    for name, component in list(pipeline.walk()):
        if isinstance(component, ExtractiveReader):
            pipeline.remove_component(name)
    return pipeline


def ask_retrieval(pipeline: Pipeline, question: str, top_k: int) -> list[Document]:
    """Run a retrieval-only pipeline; the documents of its last component, best first."""
    output = pipeline.run(pipeline_inputs(pipeline, question, top_k))
    (documents,) = [v["documents"] for v in output.values() if "documents" in v]
    return documents
