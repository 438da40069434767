"""Answers as JSON: what `corpusqa ask --json` and `read --json` print and `corpusqa serve` answers with.

One record per question:

* ``question``, and ``abstained``: whether the reader's first choice is "no answer";
* ``no_answer``: ``{"score": ...}``, the share of the reader's confidence that no passage answers, or null when
  the reader was told not to consider it (``--no-no-answer``);
* ``answers``: the spans found, best first, each with its text exactly as in the passage
  (``passage[start:end]``), score, context snippet and offsets into it, the passage's id and metadata, its
  offsets into the file (``file_start``/``file_end``) and page where known, and ``source`` (file and page);
* ``passages`` (asked of a corpus): what the reader read, best first: id, retrieval score, source and text;
* ``seconds``, ``retrieval_seconds`` and ``reading_seconds`` (asked of a corpus).
"""

from __future__ import annotations

from haystack import Document
from haystack.dataclasses import ExtractedAnswer

from corpusqa.indexing.split import page_at
from corpusqa.pipelines.query import Result, source_label

UNKNOWN_SOURCE = "unknown source"
#: Timing fields of a record: what differs between two askings of the same question.
TIMINGS = ("seconds", "retrieval_seconds", "reading_seconds")


def answers_json(question: str, answers: list[ExtractedAnswer]) -> dict:
    """The record of one question's answers (see the module docstring), the no-answer in its own field."""
    spans = [answer for answer in answers if answer.data is not None]
    no_answer = next((answer for answer in answers if answer.data is None), None)
    return {
        "question": question,
        "abstained": not answers or answers[0].data is None,
        "no_answer": None if no_answer is None else {"score": no_answer.score},
        "answers": [answer_json(answer) for answer in spans],
    }


def result_json(result: Result) -> dict:
    """The record of a question asked of a corpus: its answers, the passages read and the timings."""
    return {
        **answers_json(result.question, result.answers),
        "passages": [passage_json(passage) for passage in result.passages],
        "seconds": round(result.seconds, 4),
        "retrieval_seconds": round(result.retrieval_seconds, 4),
        "reading_seconds": round(result.reading_seconds, 4),
    }


def answer_json(answer: ExtractedAnswer) -> dict:
    """A span with every offset: into the passage, into its context snippet and, when known, into the file
    and the page it stands on (a passage may start on the page before)."""
    document = answer.document
    start, end = answer.document_offset.start, answer.document_offset.end
    meta = _public(document)
    found = {
        "answer": answer.data,
        "score": answer.score,
        "start": start,
        "end": end,
        "context": answer.context,
        "context_start": answer.context_offset.start,
        "context_end": answer.context_offset.end,
        "document_id": document.id,
        "source": source_label(document, start, unknown=UNKNOWN_SOURCE),
        "meta": meta,
    }
    if isinstance(meta.get("split_idx_start"), int):
        found["file_start"] = meta["split_idx_start"] + start
        found["file_end"] = meta["split_idx_start"] + end
    page = page_at(document, start)
    if page is not None:
        found["page"] = page
    return found


def passage_json(passage: Document) -> dict:
    return {
        "document_id": passage.id,
        "score": passage.score,
        "source": source_label(passage, 0, unknown=UNKNOWN_SOURCE),
        "content": passage.content,
        "meta": _public(passage),
    }


def _public(document: Document) -> dict:
    """The document's metadata less the store's own fields (named ``_...``)."""
    return {key: value for key, value in document.meta.items() if not key.startswith("_")}
