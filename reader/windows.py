"""Cut (question, passage) pairs into model-sized windows and run them through the model in length-sorted batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Encoding

from .backend import ReaderBackend
from .model import ReaderModel

logger = logging.getLogger(__name__)

#: Batch widths are rounded up to a multiple of this. Fewer distinct shapes keep oneDNN's per-shape kernel
#: cache small (bf16 on an AMX CPU: +566 MB working memory without rounding, +144 MB with it, for 1,200
#: passages) and fill the 16-row matrix tiles of AMX and tensor cores.
PAD_MULTIPLE = 16


@dataclass(frozen=True)
class Windows:
    """Tokenized windows; ``pair_index[i]`` is the (question, passage) pair window i was cut from."""

    encodings: list[Encoding]
    pair_index: np.ndarray


@dataclass(frozen=True)
class WindowLogits:
    """Model outputs for a batch of windows, padded to the batch's longest window."""

    window_index: np.ndarray
    start_logits: torch.Tensor
    end_logits: torch.Tensor
    context_mask: torch.Tensor


def truncate_questions(tokenizer, questions: Sequence[str], max_question_length: int) -> tuple[list[str], int]:
    """Cut each question after its first ``max_question_length`` tokens, at a character boundary.

    Cutting the string (not the ids) keeps one tokenization path for short and long questions; a question
    too long for the window would otherwise make pair truncation fail. Also returns the longest kept
    question's token count, which bounds the passage room of a window.
    """
    encoded = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    truncated = []
    for question, offsets in zip(questions, encoded["offset_mapping"]):
        if len(offsets) > max_question_length:
            logger.warning("question of %d tokens truncated to %d", len(offsets), max_question_length)
            question = question[: offsets[max_question_length - 1][1]]
        truncated.append(question)
    longest = max((min(len(offsets), max_question_length) for offsets in encoded["offset_mapping"]), default=0)
    return truncated, longest


def check_window_geometry(tokenizer, max_seq_length: int, doc_stride: int, question_tokens: int) -> None:
    """Fail early, with the numbers, when a window could hold no passage text beyond the overlap."""
    room = max_seq_length - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    if doc_stride >= room:
        raise ValueError(
            f"doc_stride ({doc_stride}) must be smaller than the passage room of a window ({room} tokens = "
            f"max_seq_length {max_seq_length} - question {question_tokens} tokens - special tokens)"
        )


def prepare_questions(
    tokenizer, questions: Sequence[str], max_seq_length: int, doc_stride: int, max_question_length: int
) -> list[str]:
    """The questions as windows hold them: leading white space dropped (some SQuAD questions start with runs of
    spaces), cut after ``max_question_length`` tokens, and the window geometry checked for the longest.

    Reading and training both call this, then ``make_windows``: what the reader learns from and what it reads
    are cut by the same code.
    """
    asked, question_tokens = truncate_questions(tokenizer, [q.lstrip() for q in questions], max_question_length)
    check_window_geometry(tokenizer, max_seq_length, doc_stride, question_tokens)
    return asked


def make_windows(
    tokenizer, questions: Sequence[str], passages: Sequence[str], max_seq_length: int, doc_stride: int
) -> Windows:
    """Tokenize pairs question-first; passages longer than a window overflow into windows overlapping by doc_stride."""
    batch = tokenizer(
        list(questions),
        list(passages),
        truncation="only_second",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_token_type_ids=True,
        padding=False,
    )
    return Windows(encodings=list(batch.encodings), pair_index=np.asarray(batch["overflow_to_sample_mapping"]))


def run_windows(
    reader: ReaderModel,
    windows: Windows,
    batch_size: int,
    which: np.ndarray | None = None,
    backend: ReaderBackend | None = None,
) -> Iterator[WindowLogits]:
    """Forward the windows (those numbered in ``which``, else all), longest first, ``batch_size`` at a time, each
    batch padded only to its own longest (rounded up to ``PAD_MULTIPLE``), through ``backend`` (else the reader's).

    Sorting by length keeps padding small; the bounded batch keeps memory flat however many windows come in.
    """
    encodings = windows.encodings
    which = np.arange(len(encodings)) if which is None else np.asarray(which, dtype=np.int64)
    lengths = np.fromiter((len(encodings[w].ids) for w in which), dtype=np.int64, count=len(which))
    order = which[np.argsort(-lengths, kind="stable")]
    backend = backend or reader.backend
    pad_id = reader.tokenizer.pad_token_id or 0
    names = reader.input_names
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        width = -(-len(encodings[chunk[0]].ids) // PAD_MULTIPLE) * PAD_MULTIPLE
        ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        type_ids = np.zeros_like(ids)
        attention = np.zeros_like(ids)
        context = np.zeros(ids.shape, dtype=bool)
        for row, index in enumerate(chunk):
            encoding = encodings[index]
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            type_ids[row, :n] = encoding.type_ids
            attention[row, :n] = 1
            context[row, :n] = [sequence == 1 for sequence in encoding.sequence_ids]
        inputs = {"input_ids": ids, "attention_mask": attention, "token_type_ids": type_ids}
        start_logits, end_logits = backend({k: v for k, v in inputs.items() if k in names})
        yield WindowLogits(
            window_index=chunk,
            start_logits=start_logits,
            end_logits=end_logits,
            context_mask=torch.from_numpy(context).to(backend.device),
        )
