"""Load the query pipelines (YAML beside this file) and ask them questions: shared by the CLI and the UI."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from haystack import Document, Pipeline
from haystack.dataclasses import ExtractedAnswer

import corpusqa.reader  # noqa: F401  (registers corpusqa as trusted for Pipeline deserialization)
from corpusqa.indexing.embedding import local_model_path
from corpusqa.reader.component import ExtractiveReader

PIPELINE_DIR = Path(__file__).parent
RETRIEVERS = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class Result:
    """One question's answers (best first, a no-answer has ``data=None``), the passages read, and timings."""

    question: str
    answers: list[ExtractedAnswer]
    passages: list[Document]
    seconds: float

    @property
    def abstained(self) -> bool:
        return not self.answers or self.answers[0].data is None


def pipeline_file(retriever: str) -> Path:
    if retriever not in RETRIEVERS:
        raise ValueError(f"retriever must be one of {', '.join(RETRIEVERS)}, not {retriever!r}")
    return PIPELINE_DIR / f"query_{retriever}.yaml"


def load_query_pipeline(
    retriever: str = "hybrid", store: str | Path = ".corpusqa", reader: dict[str, Any] | None = None
) -> Pipeline:
    """The YAML pipeline for ``retriever``, pointed at ``store``; ``reader`` overrides the reader's settings."""
    data = yaml.safe_load(pipeline_file(retriever).read_text(encoding="utf-8"))
    for component in data["components"].values():
        params = component["init_parameters"]
        if "document_store" in params:
            params["document_store"]["init_parameters"]["path"] = str(store)
        if component["type"].endswith("TextEmbedder"):
            params["model"] = local_model_path(params["model"])
        if component["type"].endswith("ExtractiveReader") and reader:
            params.update({k: v for k, v in reader.items() if v is not None})
    return Pipeline.from_dict(data)


def ask(
    pipeline: Pipeline,
    question: str,
    passages: int | None = None,
    answers: int | None = None,
    filters: dict[str, Any] | None = None,
) -> Result:
    """Run one question through the pipeline; ``passages`` and ``answers`` override the YAML's top_k values."""
    feeder = _reader_feeder(pipeline)
    started = time.perf_counter()
    output = pipeline.run(pipeline_inputs(pipeline, question, passages, answers, filters), include_outputs_from={feeder})
    seconds = time.perf_counter() - started
    reader_name = next(n for n, c in pipeline.walk() if isinstance(c, ExtractiveReader))
    return Result(question, output[reader_name]["answers"], output[feeder]["documents"], seconds)


def pipeline_inputs(
    pipeline: Pipeline, question: str, passages: int | None, answers: int | None = None, filters: dict | None = None
) -> dict[str, dict[str, Any]]:
    """Each component's run inputs, by socket name: retrieval components get ``passages`` as top_k, the reader
    ``answers``; None leaves the YAML's value."""
    retrieval = {"query": question, "text": question, "top_k": passages, "filters": filters}
    reading = {"query": question, "top_k": answers}
    data = {}
    for name, sockets in pipeline.inputs().items():
        source = reading if isinstance(pipeline.get_component(name), ExtractiveReader) else retrieval
        data[name] = {key: value for key, value in source.items() if key in sockets and value is not None}
    return data


def _reader_feeder(pipeline: Pipeline) -> str:
    """The component whose documents the reader reads: its passages are shown even when the reader abstains."""
    for sender, receiver, data in pipeline.graph.edges(data=True):
        if isinstance(pipeline.get_component(receiver), ExtractiveReader) and data["to_socket"].name == "documents":
            return sender
    raise ValueError("the pipeline has no component feeding documents to the reader")
