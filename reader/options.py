"""``ReadOptions``: how the reader cuts, decodes and ranks, in one object that reaches every face whole.

The CLI makes a flag of each field and the HTTP API a request field, both explained by the field's
``metadata["help"]``; the Haystack component serialises the object as a mapping. A field added here appears
in all of them. This module imports nothing heavy, so `corpusqa --help` stays instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


#: What a reader can run in (``dtype``): torch in one of three float dtypes, or ONNX Runtime with int8 weights on
#: the CPU; "auto" lets the hardware module choose (``hardware.inference_precision``).
PRECISIONS = ("float32", "bfloat16", "float16", "int8")


@dataclass(frozen=True)
class ReadOptions:
    """How the reader cuts, decodes and ranks. These defaults are the project's single source of them."""

    top_k: int = field(default=5, metadata={"help": "answers to return per question, besides the no-answer"})
    max_seq_length: int = field(
        default=384, metadata={"help": "tokens per window: question, a piece of the passage and special tokens"}
    )
    doc_stride: int = field(default=128, metadata={"help": "tokens by which the windows of a long passage overlap"})
    max_question_length: int = field(default=64, metadata={"help": "question tokens kept; the rest are cut"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer, in tokens"})
    n_best_per_window: int = field(default=20, metadata={"help": "best spans kept per window before ranking"})
    no_answer_threshold: float | None = field(
        default=None,
        metadata={
            "help": "abstain when null_logit - best_logit exceeds this; None: the threshold stored with the "
            "model (tuned by `corpusqa eval squad --save-threshold`), else 0"
        },
    )
    no_answer: bool = field(default=True, metadata={"help": "weigh a no-answer against the spans (SQuAD 2.0)"})
    batch_size: int | None = field(
        default=None, metadata={"help": "windows per forward pass; None: 64 on a GPU, 8 on a CPU with AMX, 4 on other CPUs"}
    )
    context_chars: int = field(
        default=150, metadata={"help": "characters of passage shown on each side of an answer"}
    )
    pairs_per_chunk: int = field(
        default=2048, metadata={"help": "(question, passage) pairs tokenized at once; bounds memory"}
    )
    corpus_retriever: str | None = field(
        default=None,
        metadata={
            "help": "the retriever the passages come from (bm25, dense, hybrid): unset thresholds and weights take "
            "the values tuned for it over a corpus (`corpusqa tune`), else 0"
        },
    )
    retrieval_weight: float | None = field(
        default=None,
        metadata={
            "help": "add this times a passage's retrieval score, relative to the best passage's, to its spans' "
            "logits (BERTserini); None: the value tuned for corpus_retriever, else 0"
        },
    )
    rescore_margin: float | None = field(
        default=2.0,
        metadata={
            "help": "int8 readers only: windows whose best span is within this many logits of the question's best "
            "are read again in fp32, so close calls are decided as in fp32; null (in a YAML or a request): int8 alone "
            "decides"
        },
    )
    merge_overlapping: bool = field(
        default=True,
        metadata={
            "help": "drop a span that overlaps a higher-ranked answer at the same place of the same file "
            '("around 1712" under "1712"): one place in a text is one answer'
        },
    )

    def to_dict(self) -> dict[str, Any]:
        """Every field, by name: what a pipeline YAML holds."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadOptions:
        """Options from some or all of their fields; an unknown name is an error that names it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ReadOptions has no field {', '.join(map(repr, unknown))} (fields: {', '.join(sorted(known))})")
        return cls(**data)
