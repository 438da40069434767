"""A drop-in for transformers 4.x's ``pipeline("question-answering")``, which transformers 5 removed.

The seeds' model cards call ``pipeline('question-answering', model=...)({'question': ..., 'context': ...})``
and expect ``{'score', 'start', 'end', 'answer'}``. This face gives the same answers and scores as
transformers 4.57's QuestionAnsweringPipeline (fast-tokenizer path): a softmax over each window's passage
tokens and CLS, span score = start probability x end probability, the n best spans per window with
answers snapped to whole words (``align_to_words``), answers of equal lower-cased text merged by adding
their scores, and the CLS product as the no-answer score. It shares tokenization and the batched,
length-sorted forward pass with the corpus reader, so it is faster than the per-window original.

One deliberate difference: ``max_question_len`` truncates the question, as 4.x documented; 4.x's fast
path ignored it and failed on questions longer than a window.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .hardware import inference_precision, reading_batch_size, resolve_device
from .model import ReaderModel, load_reader_model
from .windows import make_windows, run_windows, truncate_questions

#: 4.x filled logits outside the passage with this before its softmax (not -inf: CLS keeps a share).
_MASKED_LOGIT = np.float32(-10000.0)


def pipeline(
    task: str | None = "question-answering",
    model: str | Path | ReaderModel | None = None,
    tokenizer=None,
    device: str | None = "auto",
    batch_size: int | None = None,
    dtype: str = "auto",
    **_ignored,
) -> QuestionAnsweringPipeline:
    """``pipeline("question-answering", model=M)`` or ``pipeline(M)``: the seeds' entry point."""
    if model is None and task not in (None, "question-answering"):
        model, task = task, "question-answering"
    if task != "question-answering":
        raise ValueError(f"only the 'question-answering' task is supported, not {task!r}")
    if model is None:
        raise ValueError("name a question-answering model: pipeline('question-answering', model=...)")
    if tokenizer is not None and not (isinstance(tokenizer, str) and str(tokenizer) == str(model)):
        raise ValueError("a separate tokenizer is not supported: the model folder's own tokenizer is used")
    if dtype in (None, "auto") and inference_precision(resolve_device(device)) == "int8":
        # This face decodes each context on its own, as transformers does, with no fp32 re-read of close calls
        # (``core``), so ``auto`` does not take int8 here; ``dtype="int8"`` still does.
        dtype = "float32"
    loaded = model if isinstance(model, ReaderModel) else load_reader_model(model, device=device, dtype=dtype)
    return QuestionAnsweringPipeline(loaded, batch_size=batch_size)


class QuestionAnsweringPipeline:
    """Callable like transformers 4.x's QuestionAnsweringPipeline, with its keyword arguments and defaults."""

    def __init__(self, reader: ReaderModel, batch_size: int | None = None):
        self.reader = reader
        self.batch_size = batch_size or reading_batch_size(reader.device)

    def __call__(
        self,
        *args,
        top_k: int = 1,
        doc_stride: int | None = None,
        max_answer_len: int = 15,
        max_seq_len: int | None = None,
        max_question_len: int = 64,
        handle_impossible_answer: bool = False,
        align_to_words: bool = True,
        **kwargs,
    ):
        examples = _examples(args, kwargs)
        if top_k < 1:
            raise ValueError(f"top_k parameter should be >= 1 (got {top_k})")
        if max_answer_len < 1:
            raise ValueError(f"max_answer_len parameter should be >= 1 (got {max_answer_len})")
        tokenizer = self.reader.tokenizer
        max_seq_len = min(self.reader.max_positions, 384) if max_seq_len is None else max_seq_len
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")

        questions, _ = truncate_questions(tokenizer, [q for q, _ in examples], max_question_len)
        windows = make_windows(tokenizer, questions, [c for _, c in examples], max_seq_len, doc_stride)
        logits: list[tuple[np.ndarray, np.ndarray]] = [None] * len(windows.encodings)  # type: ignore[list-item]
        for batch in run_windows(self.reader, windows, self.batch_size):
            starts, ends = batch.start_logits.cpu().numpy(), batch.end_logits.cpu().numpy()
            for row, window in enumerate(batch.window_index):
                n = len(windows.encodings[window].ids)
                logits[window] = (starts[row, :n], ends[row, :n])

        results = []
        for number, (_, context) in enumerate(examples):
            mine = np.flatnonzero(windows.pair_index == number)
            answers = _answers(
                context,
                [windows.encodings[w] for w in mine],
                [logits[w] for w in mine],
                tokenizer.cls_token_id,
                top_k,
                max_answer_len,
                handle_impossible_answer,
                align_to_words,
            )
            results.append(answers[0] if len(answers) == 1 else answers)
        return results[0] if len(results) == 1 else results


def _examples(args: tuple, kwargs: dict) -> list[tuple[str, str]]:
    """Accept every input shape 4.x accepted: (q, c), dict, list of dicts, question=/context= (str or lists)."""
    if len(args) == 2 and all(isinstance(a, str) for a in args):
        items: Iterable = [{"question": args[0], "context": args[1]}]
    elif len(args) == 1:
        items = [args[0]] if isinstance(args[0], dict) else args[0]
    elif args:
        items = list(args)
    elif "question" in kwargs and "context" in kwargs:
        question, context = kwargs["question"], kwargs["context"]
        if isinstance(question, list) and isinstance(context, str):
            items = [{"question": q, "context": context} for q in question]
        elif isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise ValueError("Questions and contexts don't have the same lengths")
            items = [{"question": q, "context": c} for q, c in zip(question, context)]
        elif isinstance(question, str) and isinstance(context, str):
            items = [{"question": question, "context": context}]
        else:
            raise ValueError("Arguments can't be understood")
    else:
        raise ValueError(f"Unknown arguments {kwargs}")
    examples = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"{item} argument needs to be a dict with keys question and context")
        for key in ("question", "context"):
            if key not in item:
                raise KeyError("You need to provide a dictionary with keys {question:..., context:...}")
            if item[key] is None:
                raise ValueError(f"`{key}` cannot be None")
            if isinstance(item[key], str) and not item[key]:
                raise ValueError(f"`{key}` cannot be empty")
        examples.append((item["question"], item["context"]))
    return examples


def _answers(context, encodings, logits, cls_id, top_k, max_answer_len, impossible, align) -> list[dict]:
    """4.x's post-processing for one example: per-window probabilities, n best spans, merging, no-answer."""
    min_null = 1_000_000.0
    answers: list[dict] = []
    by_text: dict[str, dict] = {}
    per_window = top_k * 2 + 10 if align else top_k  # word snapping can merge candidates, so keep spares
    for encoding, (start_logits, end_logits) in zip(encodings, logits):
        allowed = np.array([s == 1 for s in encoding.sequence_ids]) | (np.array(encoding.ids) == cls_id)
        p_start = _softmax(np.where(allowed, start_logits.astype(np.float32), _MASKED_LOGIT))
        p_end = _softmax(np.where(allowed, end_logits.astype(np.float32), _MASKED_LOGIT))
        if impossible:
            min_null = min(min_null, float(p_start[0] * p_end[0]))
        p_start[0] = p_end[0] = 0.0
        for start, end, score in _top_pairs(p_start, p_end, max_answer_len, per_window):
            begin, finish = _char_span(encoding, start, end, align)
            text = context[begin:finish]
            same = by_text.get(text.lower())
            if same is not None:
                same["score"] += score
            else:
                answer = {"score": score, "start": begin, "end": finish, "answer": text}
                by_text[text.lower()] = answer
                answers.append(answer)
    if impossible:
        answers.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]


def _softmax(values: np.ndarray) -> np.ndarray:
    exp = np.exp(values - values.max())
    return exp / exp.sum()


def _top_pairs(p_start, p_end, max_answer_len, count) -> list[tuple[int, int, float]]:
    """The ``count`` best (start, end) with start <= end < start + max_answer_len; zero-probability pairs dropped."""
    outer = np.tril(np.triu(np.outer(p_start, p_end)), max_answer_len - 1)
    flat = outer.ravel()
    best = np.argsort(-flat, kind="stable")[:count]
    starts, ends = np.unravel_index(best, outer.shape)
    return [(int(s), int(e), float(outer[s, e])) for s, e in zip(starts, ends) if outer[s, e] > 0]


def _char_span(encoding, start: int, end: int, align: bool) -> tuple[int, int]:
    """Token span to characters of the passage; with ``align`` widened to whole words as 4.x did."""
    if align:
        start_word, end_word = encoding.token_to_word(start), encoding.token_to_word(end)
        if start_word is not None and end_word is not None:
            return (
                encoding.word_to_chars(start_word, sequence_index=1)[0],
                encoding.word_to_chars(end_word, sequence_index=1)[1],
            )
    return encoding.offsets[start][0], encoding.offsets[end][1]
