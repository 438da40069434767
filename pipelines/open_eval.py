"""Open-domain evaluation: every SQuAD paragraph is a passage of its article; every question goes through the
full query pipeline (retrieval, then the reader), as users run it.

Retrieval recall@k counts a question when a retrieved passage contains one of its gold answer texts.

Abstention is measured on questions the corpus cannot answer: the first ``unanswerable`` questions are asked a
second time with their own article filtered out (as ``corpusqa tune`` asks training questions), and the share
the pipeline declines is reported beside the EM it keeps on the answerable questions when it may abstain.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from haystack import Document
from tqdm.auto import tqdm

from corpusqa.indexing.indexer import IndexSettings
from corpusqa.indexing.store.contract import CorpusStore
from corpusqa.reader.core import no_answer_threshold, rank, read_candidates, retrieval_weight
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


def index_passages(store: CorpusStore, passages: list[Document], embed: bool = True, progress: bool = True) -> None:
    """Write passages (embedded with the indexing pipeline's embedder) in committed batches."""
    embedder = IndexSettings().embedder() if embed else None
    if embedder is not None:
        embedder.warm_up()
    batch = 1000
    with store.bulk():
        for begin in tqdm(range(0, len(passages), batch), desc="indexing", unit="batch", disable=not progress):
            chunk = passages[begin : begin + batch]
            if embedder is not None:
                chunk = embedder.run(chunk)["documents"]
            store.write_documents(chunk)


def evaluate_open(
    examples: Sequence[SquadExample],
    retrievers: Sequence[str],
    store: str | Path,
    passages: int = 10,
    reader: dict | None = None,
    progress: bool = True,
    latency_sample: int = 200,
    unanswerable: int = 0,
) -> dict[str, dict[str, float]]:
    """Per retriever: recall@1/5/10/20 of retrieval, EM/F1 of the pipeline's top answer, and latency; with
    ``unanswerable``, also EM/F1 where an abstention counts as no answer, and the share of the first
    ``unanswerable`` questions declined when asked without their article.

    Every question is retrieved one at a time (that is the retrieval latency). The reader then reads each
    question's passages once for all retrievers (the union of their top ``passages``), in batches across
    questions, and ranks each retriever's own passages: the same answers as asking one by one, only faster.
    End-to-end latency is what ``ask`` takes, one question at a time, on the first ``latency_sample``.
    """
    pipelines = {name: load_query_pipeline(name, store, reader) for name in retrievers}
    readers = {json.dumps(_reading_settings(p), sort_keys=True, default=str) for p in pipelines.values()}
    if len(readers) != 1:
        raise ValueError("the pipelines' readers differ: evaluate those retrievers one at a time")
    results, to_read = {}, {}
    for name, pipeline in pipelines.items():
        results[name], to_read[name] = _retrieval_recall(pipeline, name, examples, passages, progress)
    model = pipelines[retrievers[0]].reader
    questions = [e.question for e in examples]
    union = [list({d.id: d for name in retrievers for d in to_read[name][i]}.values()) for i in range(len(examples))]
    candidates = read_candidates(model.loaded, questions, union, replace(model.options, top_k=1), progress=progress)
    dataset = SquadDataset(version="1.1", examples=list(examples))
    for name, pipeline in pipelines.items():
        ranked = _ranked(pipeline, examples, candidates, to_read[name])
        metrics = evaluate(dataset, {e.id: best_span(answers) for e, answers in zip(examples, ranked)})
        results[name].update(exact=metrics["exact"], f1=metrics["f1"], total=len(examples))
        if unanswerable:
            kept = {e.id: "" if abstains(answers) else best_span(answers) for e, answers in zip(examples, ranked)}
            kept = evaluate(dataset, kept)
            results[name].update(exact_with_abstention=kept["exact"], f1_with_abstention=kept["f1"])
        options = replace(pipeline.reader.options, top_k=1)
        seconds = [ask(pipeline, e.question, passages, options=options).seconds for e in examples[:latency_sample]]
        results[name].update(_percentiles("end_to_end", seconds))
    if unanswerable:
        for name, declined in _declined(pipelines, examples[:unanswerable], passages, progress).items():
            results[name].update(unanswerable=min(unanswerable, len(examples)), unanswerable_declined=declined)
    return results


def _ranked(pipeline, examples, candidates, read_docs) -> list[list]:
    """Each question's answers as the pipeline ranks them from its own passages (of the candidates read)."""
    options = replace(pipeline.reader.options, top_k=1)
    threshold = no_answer_threshold(pipeline.reader.loaded, options)
    weight = retrieval_weight(pipeline.reader.loaded, options)
    ranked = []
    for example, found, docs in zip(examples, candidates, read_docs):
        scores = {d.id: d.score for d in docs}  # this retriever's scores, for the retrieval weight
        mine = [c for c in found if c.document.id in scores]
        ranked.append(rank(example.question, mine, threshold, options, weight, scores))
    return ranked


def _declined(pipelines, examples, passages, progress) -> dict[str, float]:
    """Per retriever, the share (%) of ``examples`` declined when asked with their own article filtered out."""
    to_read = {}
    for name, pipeline in pipelines.items():
        filters = [{"field": "meta.title", "operator": "!=", "value": e.title} for e in examples]
        to_read[name] = [
            retrieve(pipeline, e.question, passages, f)
            for e, f in zip(tqdm(examples, desc=f"retrieving without the article ({name})", unit="question",
                                 disable=not progress), filters)
        ]
    model = next(iter(pipelines.values())).reader
    union = [list({d.id: d for name in pipelines for d in to_read[name][i]}.values()) for i in range(len(examples))]
    candidates = read_candidates(model.loaded, [e.question for e in examples], union,
                                 replace(model.options, top_k=1), progress=progress)
    return {
        name: 100 * float(np.mean([abstains(a) for a in _ranked(pipeline, examples, candidates, to_read[name])]))
        for name, pipeline in pipelines.items()
    }


def _reading_settings(pipeline) -> dict:
    """What makes two pipelines read alike: the reader's settings, but for the retriever its tuned values follow."""
    settings = pipeline.reader.to_dict()
    settings["init_parameters"]["options"].pop("corpus_retriever", None)
    return settings


def _retrieval_recall(pipeline, name, examples, passages, progress) -> tuple[dict[str, float], list[list[Document]]]:
    """Recall@k and retrieval latency; and each question's top ``passages``, for the reader."""
    hits = np.zeros(len(RECALL_AT))
    seconds, to_read = [], []
    for example in tqdm(examples, desc=f"retrieving ({name})", unit="question", disable=not progress):
        started = time.perf_counter()
        found = retrieve(pipeline, example.question, max(max(RECALL_AT), passages))
        seconds.append(time.perf_counter() - started)
        rank_of_answer = next((i for i, d in enumerate(found) if any(a in d.content for a in example.answers)), None)
        hits += [rank_of_answer is not None and rank_of_answer < k for k in RECALL_AT]
        to_read.append(found[:passages])
    recall = {f"recall@{k}": 100 * h / len(examples) for k, h in zip(RECALL_AT, hits)}
    return {**recall, **_percentiles("retrieval", seconds)}, to_read


def _percentiles(name: str, seconds: list[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": 1000 * float(np.percentile(seconds, 50)), f"{name}_p95_ms": 1000 * float(np.percentile(seconds, 95))}


def abstains(answers) -> bool:
    """Whether the pipeline's top answer is "no answer"."""
    return not answers or answers[0].data is None


def best_span(answers) -> str:
    """The top span even where the reader would abstain: every SQuAD 1.1 question has an answer, and open-domain
    results (BERTserini's among them) are scored on the best span."""
    return next((a.data for a in answers if a.data is not None), "")
