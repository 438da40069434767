"""Load the query pipelines (YAML beside this file) and ask them questions: shared by the CLI and the UI."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from haystack import Document, Pipeline
from haystack.dataclasses import ExtractedAnswer

from corpusqa.indexing.embedding import embedding_precision, local_model_path
from corpusqa.indexing.split import page_at
from corpusqa.indexing.store.location import store_config
from corpusqa.reader.component import ExtractiveReader
from corpusqa.reader.options import ReadOptions

PIPELINE_DIR = Path(__file__).parent
RETRIEVERS = ("bm25", "dense", "hybrid")
#: Passages a re-ranker re-scores: deeper than the reader reads, so it can promote what retrieval ranked low.
RERANK_CANDIDATES = 50


@dataclass(frozen=True)
class Result:
    """One question's answers (best first, a no-answer has ``data=None``), the passages read, and timings."""

    question: str
    answers: list[ExtractedAnswer]
    passages: list[Document]
    retrieval_seconds: float
    reading_seconds: float

    @property
    def seconds(self) -> float:
        return self.retrieval_seconds + self.reading_seconds

    @property
    def abstained(self) -> bool:
        return not self.answers or self.answers[0].data is None


@dataclass(frozen=True)
class QueryPipeline:
    """A query YAML split at its reader: ``retrieval`` is every other component (a Haystack Pipeline ending in
    ``feeder``, whose documents the reader reads), so retrieval and reading are timed, and batched, apart."""

    retrieval: Pipeline
    feeder: str
    reader: ExtractiveReader

    @property
    def retrieves_in_bf16(self) -> bool:
        """Whether retrieval runs under ``embedding_precision``: only while the question embedder is the one
        model in it (a component that loads one has ``warm_up``, by Haystack's convention), measured as good
        in bf16 as in fp32. A re-ranker's cross-encoder is not measured, and a tiny one reorders passages in
        bf16, so a pipeline with one runs as loaded."""
        models = [component for _, component in self.retrieval.walk() if hasattr(component, "warm_up")]
        if not models:
            return True
        # imported here, not at start-up (sentence-transformers loads slowly): the models above loaded it
        from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder

        return all(isinstance(model, SentenceTransformersTextEmbedder) for model in models)


def source_label(passage: Document, offset: int, unknown: str) -> str:
    """The passage's file name (``unknown`` without one) and, in a PDF, the page of the character at
    ``offset`` (a passage may start on the page before its answer's): how the CLI and the UI name a source."""
    name = passage.meta.get("file_name") or passage.meta.get("file_path") or unknown
    page = page_at(passage, offset)
    return f"{name}, page {page}" if page is not None else name


def pipeline_file(retriever: str) -> Path:
    if retriever not in RETRIEVERS:
        raise ValueError(f"retriever must be one of {', '.join(RETRIEVERS)}, not {retriever!r}")
    return PIPELINE_DIR / f"query_{retriever}.yaml"


def load_query_pipeline(
    retriever: str = "hybrid",
    store: str | Path = ".corpusqa",
    reader: dict[str, Any] | None = None,
    reranker: str | Path | None = None,
    candidates: int = RERANK_CANDIDATES,
) -> QueryPipeline:
    """The YAML pipeline for ``retriever``, pointed at ``store`` (a folder or a store URL, see
    ``store_config``); ``reader`` overrides the reader's settings: its init parameters (``model``,
    ``device``...) or fields of its ``ReadOptions``; ``reranker`` (a cross-encoder's hub id or folder)
    re-scores the top ``candidates`` passages before the reader (see ``add_reranker``)."""
    data = yaml.safe_load(pipeline_file(retriever).read_text(encoding="utf-8"))
    location = store_config(store)
    for component in data["components"].values():
        params = component["init_parameters"]
        if "document_store" in params:
            params["document_store"] = _pointed_at(params["document_store"], location)
        if component["type"].endswith("TextEmbedder"):
            params["model"] = local_model_path(params["model"])
        if component["type"].endswith("ExtractiveReader") and reader:
            _override_reader(params, reader)
    pipeline = split_at_reader(Pipeline.from_dict(data))
    return pipeline if reranker is None else add_reranker(pipeline, str(reranker), candidates)


def _override_reader(params: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set the reader's init parameters, and the fields of its options, that ``overrides`` names (not None)."""
    fields = ReadOptions.__dataclass_fields__
    given = {key: value for key, value in overrides.items() if value is not None}
    params.update({key: value for key, value in given.items() if key not in fields})
    params["options"] = {**params.get("options", {}), **{key: value for key, value in given.items() if key in fields}}


def _pointed_at(declared: dict[str, Any], location: dict[str, Any]) -> dict[str, Any]:
    """The store at ``location``, keeping the YAML's other settings of it when the YAML names the same kind."""
    kept = declared.get("init_parameters", {}) if declared.get("type") == location["type"] else {}
    return {"type": location["type"], "init_parameters": {**kept, **location["init_parameters"]}}


def split_at_reader(pipeline: Pipeline) -> QueryPipeline:
    """Take the reader out of a full query pipeline; what is left must feed it documents."""
    readers = [name for name, component in pipeline.walk() if isinstance(component, ExtractiveReader)]
    if len(readers) != 1:
        raise ValueError(f"a query pipeline needs exactly one ExtractiveReader, found {len(readers)}")
    feeders = [
        sender
        for sender, receiver, data in pipeline.graph.edges(data=True)
        if receiver == readers[0] and data["to_socket"].name == "documents"
    ]
    if len(feeders) != 1:
        raise ValueError("a query pipeline needs exactly one component feeding documents to the reader")
    reader = pipeline.remove_component(readers[0])
    return QueryPipeline(retrieval=pipeline, feeder=feeders[0], reader=reader)


def add_reranker(pipeline: QueryPipeline, model: str, candidates: int = RERANK_CANDIDATES) -> QueryPipeline:
    """``pipeline`` with a cross-encoder (Haystack's SentenceTransformersSimilarityRanker) as the reader's
    feeder: every component before it retrieves at least ``candidates`` passages, the ranker re-scores
    them and passes on as many as the old feeder did (the ``passages`` of ``retrieve`` and ``ask``)."""
    # imported here: sentence-transformers loads slowly, and only a re-ranking pipeline needs it
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    retrieval = pipeline.retrieval
    passages = getattr(retrieval.get_component(pipeline.feeder), "top_k", None)
    ranker = SentenceTransformersSimilarityRanker(model=model, **({"top_k": passages} if passages else {}))
    for _, component in retrieval.walk():
        if isinstance(getattr(component, "top_k", None), int):
            component.top_k = max(component.top_k, candidates)
    retrieval.add_component("reranker", ranker)
    retrieval.connect(f"{pipeline.feeder}.documents", "reranker.documents")
    return QueryPipeline(retrieval=retrieval, feeder="reranker", reader=pipeline.reader)


def retrieve(
    pipeline: QueryPipeline, question: str, passages: int | None = None, filters: dict[str, Any] | None = None
) -> list[Document]:
    """The passages the reader would read, best first.

    ``passages`` sets the feeder's top_k; components before it (the retrievers of a fused pipeline) keep their
    YAML top_k unless that is smaller, so a longer list is the same ranking cut later.
    """
    data = {}
    for name, sockets in pipeline.retrieval.inputs().items():
        inputs = {"query": question, "text": question, "filters": filters}
        if passages is not None:
            own = getattr(pipeline.retrieval.get_component(name), "top_k", None)
            inputs["top_k"] = passages if name == pipeline.feeder or own is None else max(own, passages)
        data[name] = {key: value for key, value in inputs.items() if key in sockets and value is not None}
    with embedding_precision() if pipeline.retrieves_in_bf16 else contextlib.nullcontext():
        output = pipeline.retrieval.run(data, include_outputs_from={pipeline.feeder})
    return output[pipeline.feeder]["documents"]


def file_type_filter(file_types: Sequence[str] | None) -> dict[str, Any] | None:
    """The store filter for passages of any of ``file_types`` (None for none given: every passage)."""
    return {"field": "meta.file_type", "operator": "in", "value": list(file_types)} if file_types else None


def ask(
    pipeline: QueryPipeline,
    question: str,
    passages: int | None = None,
    filters: dict[str, Any] | None = None,
    options: ReadOptions | None = None,
) -> Result:
    """Retrieve, then read. ``passages`` overrides the YAML's count of passages read, ``options`` the reader's
    ``ReadOptions`` (replace fields of ``pipeline.reader.options`` to change some)."""
    started = time.perf_counter()
    documents = retrieve(pipeline, question, passages, filters)
    retrieved = time.perf_counter()
    found = pipeline.reader.run(question, documents, options=options)
    return Result(question, found["answers"], documents, retrieved - started, time.perf_counter() - retrieved)
