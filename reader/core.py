"""`read(questions, passages) -> ranked answers`: the one function every face of the reader calls.

Scoring, in one place:
  * A span's logit is ``start_logit + end_logit`` (``decoding.best_spans``). Spans from every window of
    every passage of a question are ranked by that logit, as Hugging Face's SQuAD post-processing ranks
    spans across the windows of one example and BERTserini ranks them across paragraphs. A per-window
    softmax (Haystack's reader, transformers' QA pipeline) would make each window's best span look
    certain however weak the window is, which ranks badly across passages.
  * The no-answer candidate's logit is the CLS logit of the window holding the best span, minus
    ``no_answer_threshold``: the reader abstains exactly when ``null_logit - best_logit > threshold``
    (SQuAD 2.0's rule, Hugging Face's ``null_score_diff_threshold``).
  * ``score`` is a softmax over all of a question's candidates, no-answer included: one shared
    denominator, so scores are comparable across passages and documents, sum to at most 1, and order
    answers exactly as their logits do.
  * An int8 reader reads every window in int8, then reads again in fp32 the windows whose best span is within
    ``rescore_margin`` logits of the question's best, and ranks their fp32 spans: the answer is chosen as in fp32.
  * Over a corpus, a span's logit may add a weight times its passage's retrieval score (BERTserini), and the
    threshold and weight tuned for the retriever (``corpusqa tune``) apply when the options leave them unset.
  * An answer stays within one block of the layout: a span that crosses a blank line, or a line break where
    the indentation changes (a man page's option and its description, a heading and its text), is no
    candidate (``_crosses_layout_break``); the window's next best spans take its place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from haystack import Document
from haystack.dataclasses import ExtractedAnswer
from tqdm.auto import tqdm

from .decoding import best_spans
from .hardware import reading_batch_size
from .model import ReaderModel
from .options import ReadOptions
from .windows import make_windows, prepare_questions, run_windows


@dataclass(frozen=True)
class Candidate:
    logit: float
    null_logit: float
    document: Document
    start: int
    end: int
    #: The reader's own logit when ``logit`` includes a retrieval bonus (``rank``'s ``weight``).
    reader_logit: float | None = None


def read(
    reader: ReaderModel,
    questions: str | Sequence[str],
    documents: Sequence[Document] | Sequence[Sequence[Document]],
    options: ReadOptions = ReadOptions(),
    progress: bool = False,
) -> list[ExtractedAnswer] | list[list[ExtractedAnswer]]:
    """Answer each question from its passages: a list of ranked answers per question.

    ``documents`` is either one list shared by all questions or one list per question. A single question
    string gives a single list of answers.
    """
    single = isinstance(questions, str)
    question_list = [questions] if single else list(questions)
    candidates = read_candidates(reader, question_list, documents, options, progress)
    threshold = no_answer_threshold(reader, options)
    weight = retrieval_weight(reader, options)
    answers = [
        rank(question, found, threshold, options, weight) for question, found in zip(question_list, candidates)
    ]
    return answers[0] if single else answers


def read_candidates(
    reader: ReaderModel,
    questions: Sequence[str],
    documents: Sequence[Document] | Sequence[Sequence[Document]],
    options: ReadOptions = ReadOptions(),
    progress: bool = False,
) -> list[list[Candidate]]:
    """Each question's candidate spans, unranked. A passage's candidates do not depend on the passages read
    with it, so the candidates of a union of passage lists, filtered to one list, rank (``rank``) exactly as
    reading that list alone would."""
    question_list = list(questions)
    per_question = _documents_per_question(question_list, documents)
    for number, question in enumerate(question_list):
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question {number} is empty; a question must be a non-empty string")
    tokenizer = reader.tokenizer
    max_seq_length = min(options.max_seq_length, reader.max_positions)
    asked = prepare_questions(tokenizer, question_list, max_seq_length, options.doc_stride, options.max_question_length)
    pairs = [
        (q, document)
        for q, docs in enumerate(per_question)
        for document in docs
        if isinstance(document.content, str) and document.content.strip()
    ]
    candidates: list[list[Candidate]] = [[] for _ in question_list]
    bar = tqdm(total=len(pairs), desc="reading", unit="passage", disable=not progress)
    for begin in range(0, len(pairs), options.pairs_per_chunk):
        chunk = pairs[begin : begin + options.pairs_per_chunk]
        _collect(reader, asked, chunk, max_seq_length, options, candidates)
        bar.update(len(chunk))
    bar.close()
    return candidates


def _documents_per_question(questions: list, documents) -> list[Sequence[Document]]:
    documents = list(documents)
    if not documents:
        return [[] for _ in questions]
    if all(isinstance(d, Document) for d in documents):
        return [documents] * len(questions)
    if len(documents) != len(questions):
        raise ValueError(f"got {len(questions)} questions but {len(documents)} document lists")
    for number, docs in enumerate(documents):
        if not all(isinstance(d, Document) for d in docs):
            raise TypeError(f"document list {number} holds something that is not a haystack Document")
    return documents


def no_answer_threshold(reader: ReaderModel, options: ReadOptions) -> float:
    """The threshold ``read`` uses; ``threshold_source`` says where it comes from."""
    return threshold_source(reader, options)[0]


def threshold_source(reader: ReaderModel, options: ReadOptions) -> tuple[float, str]:
    """The options' threshold; else, for passages from ``options.corpus_retriever``, the one tuned for it over a
    corpus (0 where none was tuned); else the one tuned on SQuAD 2.0 and stored with the model; else 0."""
    if options.no_answer_threshold is not None:
        return options.no_answer_threshold, "set in the options"
    if options.corpus_retriever is not None:
        tuned = reader.corpus_settings.get(options.corpus_retriever)
        if tuned is not None:
            return tuned.no_answer_threshold, f"tuned for the reader over a corpus ({options.corpus_retriever})"
        return 0.0, "the reader's default (none tuned over a corpus)"
    if reader.no_answer_threshold is not None:
        return reader.no_answer_threshold, "tuned for the reader model on SQuAD 2.0"
    return 0.0, "the reader's default"


def retrieval_weight(reader: ReaderModel, options: ReadOptions) -> float:
    """The options' weight, else the one tuned for ``options.corpus_retriever``, else 0."""
    if options.retrieval_weight is not None:
        return options.retrieval_weight
    tuned = reader.corpus_settings.get(options.corpus_retriever) if options.corpus_retriever else None
    return tuned.retrieval_weight if tuned is not None else 0.0


def _collect(reader, asked, pairs, max_seq_length, options, candidates) -> None:
    """Window, forward and decode one chunk of pairs; keep only each window's n best spans.

    With an int8 reader (``reader.rescore``), the windows holding a question's close calls (``_close_calls``) are
    then read again in fp32 and their spans replace int8's: int8 rounding moves logits by a little, which decides
    only between spans that were close, so those are decided in fp32."""
    windows = make_windows(
        reader.tokenizer, [asked[q] for q, _ in pairs], [d.content for _, d in pairs], max_seq_length, options.doc_stride
    )
    batch_size = options.batch_size or reading_batch_size(reader.device)
    spans = _decode(reader, windows, batch_size, options)
    if reader.rescore is not None and options.rescore_margin is not None:
        questions = np.asarray([q for q, _ in pairs])[windows.pair_index]
        close = _close_calls(spans, questions, options.rescore_margin)
        spans.update(_decode(reader, windows, batch_size, options, close, reader.rescore))
    for window, (starts, ends, logits, null) in spans.items():
        q, document = pairs[windows.pair_index[window]]
        offsets = windows.encodings[window].offsets
        for first, last, logit in zip(starts, ends, logits):
            start, end = _strip(document.content, offsets[first][0], offsets[last][1])
            if start < end and not _crosses_layout_break(document.content, start, end):
                candidates[q].append(Candidate(float(logit), float(null), document, start, end))


#: A window's decoded spans: start and end tokens and logits of its valid spans (best first), and its null logit.
WindowResult = tuple[np.ndarray, np.ndarray, np.ndarray, float]


def _decode(reader, windows, batch_size, options, which=None, backend=None) -> dict[int, WindowResult]:
    """Forward the windows (``which``, else all; ``run_windows``) and keep each one's n best spans."""
    decoded = {}
    for batch in run_windows(reader, windows, batch_size, which, backend):
        spans = best_spans(
            batch.start_logits,
            batch.end_logits,
            batch.context_mask,
            options.max_answer_length,
            options.n_best_per_window,
        )
        starts, ends = spans.starts.cpu().numpy(), spans.ends.cpu().numpy()
        logits, valid = spans.logits.cpu().numpy(), spans.valid.cpu().numpy()
        nulls = spans.null_logits.cpu().numpy()
        for row, window in enumerate(batch.window_index):
            keep = valid[row]
            decoded[int(window)] = (starts[row, keep], ends[row, keep], logits[row, keep], float(nulls[row]))
    return decoded


def _close_calls(spans: Mapping[int, WindowResult], questions: np.ndarray, margin: float) -> np.ndarray:
    """The windows whose best span is within ``margin`` logits of the best span of their question's windows in this
    chunk (``questions[w]``: window w's question); a window without a span holds no call. A question whose passages
    span two chunks has its close calls in each chunk among these: its best overall is no lower than a chunk's."""
    best = {window: logits[0] for window, (_, _, logits, _) in spans.items() if len(logits)}
    top: dict[int, float] = {}
    for window, logit in best.items():
        top[questions[window]] = max(top.get(questions[window], -math.inf), logit)
    return np.asarray(sorted(w for w, logit in best.items() if logit >= top[questions[w]] - margin), dtype=np.int64)


#: Converted tables keep cells apart with " | " (Markdown tables, and HTML and DOCX tables as indexed).
_CELL_DELIMITER = "|"
#: Sentence punctuation that follows an answer rather than belongs to it ("the default is 8.").
_TRAILING_PUNCTUATION = ".,;:!?"
#: Marks that mean nothing as a word of their own at an answer's edge: dashes, bullets, prompts, sentence
#: punctuation ("- 6", "* filename completion", "# update-mime-database"); not units or operators ("0.1 %").
_BARE_MARKS = frozenset("-\u2013\u2014\u2022*#.,;:!?")
_OPENING, _CLOSING = "([{", ")]}"
#: What a Markdown table's rule row ("|---|:---:|") is made of, deleted by ``str.translate``.
_TABLE_RULE = str.maketrans("", "", "|-:")


def _crosses_layout_break(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` runs over a blank line, or over a line break into a line indented otherwise
    than the line it starts on. Wrapped prose keeps its indentation and may be crossed ("several\n   gigabytes");
    a man page's option and its indented description, or a heading and the text under it, may not."""
    if "\n" not in text[start:end]:
        return False
    line_start = text.rfind("\n", 0, start) + 1
    lines = text[line_start:end].split("\n")
    indents = {_indentation(line) for line in lines}
    return len(indents) > 1 or any(not line.strip() for line in lines[1:])


def _indentation(line: str) -> int:
    return len(line.expandtabs()) - len(line.expandtabs().lstrip())


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim an answer span to its words by moving its ends inwards (``text[start:end]`` stays the answer).

    Goes: white space a token's offsets may include (SentencePiece-style pieces carry their leading space);
    table delimiters at either end ("| 4.5", "674 MiB |"); a dash, bullet or sentence mark standing alone at
    either end ("- 6", "* filename completion"; a unit stays: "0.1 %"); sentence punctuation after the last
    word ("8."); a bracket whose partner lies outside the span ("2.2)", "(see"). Punctuation goes only while
    a letter or digit is left, so an answer that is all punctuation ("~=") stays whole, and punctuation
    inside a word ("-6", ".xz") is the answer's. A span of table markup alone ("|", "|---|---|") ends empty:
    no answer.
    """
    markup = _CELL_DELIMITER in text[start:end]
    while True:
        before = start, end
        while start < end and (text[start].isspace() or text[start] == _CELL_DELIMITER):
            start += 1
        while end > start and (text[end - 1].isspace() or text[end - 1] == _CELL_DELIMITER):
            end -= 1
        span = text[start:end]
        if any(c.isalnum() for c in span):
            words = span.split()
            if _BARE_MARKS.issuperset(words[0]):
                start = text.index(words[1], start + len(words[0]))
            elif _BARE_MARKS.issuperset(words[-1]):
                end = text.rindex(words[-2], start, end - len(words[-1])) + len(words[-2])
            elif span[-1] in _TRAILING_PUNCTUATION:
                end -= 1
            elif span[-1] in _CLOSING and span.count(_OPENING[_CLOSING.index(span[-1])]) < span.count(span[-1]):
                end -= 1
            elif span[0] in _OPENING and span.count(_CLOSING[_OPENING.index(span[0])]) < span.count(span[0]):
                start += 1
        elif markup and not span.translate(_TABLE_RULE).strip():
            return start, start
        if (start, end) == before:
            return start, end


def span_key(candidate: Candidate) -> tuple:
    """Where a span lies in its source file, so overlapping passages of one file yield one answer."""
    meta = candidate.document.meta
    if "source_id" in meta and isinstance(meta.get("split_idx_start"), int):
        base = meta["split_idx_start"]
        return (meta["source_id"], base + candidate.start, base + candidate.end)
    return (candidate.document.id, candidate.start, candidate.end)


def rank(
    question: str,
    candidates: list[Candidate],
    threshold: float,
    options: ReadOptions,
    weight: float = 0.0,
    scores: Mapping[str, float] | None = None,
) -> list[ExtractedAnswer]:
    """Deduplicate, normalise over all candidates (see module docstring) and return the top_k, no-answer placed by score.

    With a ``weight``, a span's logit is its reader logit plus ``weight`` times its passage's relative retrieval
    score (``relative_retrieval_scores``; BERTserini's interpolation), before ranking, abstention and the
    softmax. ``meta["answer_logit"]`` is that combined logit, ``meta["reader_logit"]`` the reader's alone.

    Invariants of the answers returned (besides the no-answer entry):
      - ordered by logit, highest first, ties broken by (document id, start, end);
      - no two lie at the same place of one file (``span_key``), and with ``options.merge_overlapping`` no two
        overlap there: a span overlapping a higher-ranked one is dropped (its candidate stays in the softmax's
        denominator, so scores are unchanged for the answers kept).
    """
    if weight:
        relative = relative_retrieval_scores([c.document for c in candidates], scores)
        candidates = [
            replace(c, logit=c.logit + weight * relative[c.document.id], reader_logit=c.logit) for c in candidates
        ]
    ordered = sorted(candidates, key=lambda c: (-c.logit, c.document.id, c.start, c.end))
    seen: set[tuple] = set()
    kept: dict[object, list[tuple[int, int]]] = {}  # source -> spans of the answers kept so far
    unique, shown = [], []
    for candidate in ordered:
        key = span_key(candidate)
        if key in seen:
            continue
        seen.add(key)
        unique.append(candidate)
        source, start, end = key
        if options.merge_overlapping and any(s < end and start < e for s, e in kept.get(source, ())):
            continue
        kept.setdefault(source, []).append((start, end))
        shown.append(candidate)
    logits = [c.logit for c in unique]
    if options.no_answer:
        null_logit = unique[0].null_logit - threshold if unique else 0.0
        logits.append(null_logit)
    if not logits:
        return []
    peak = max(logits)
    log_total = peak + math.log(sum(math.exp(x - peak) for x in logits))
    answers = [
        _answer(question, c, math.exp(c.logit - log_total), options.context_chars) for c in shown[: options.top_k]
    ]
    if options.no_answer:
        null_score = math.exp(logits[-1] - log_total)
        best_null = unique[0].null_logit if unique else None
        answers.append(
            ExtractedAnswer(query=question, score=null_score, data=None, meta={"no_answer_logit": best_null})
        )
        answers.sort(key=lambda a: -a.score)
    return answers


def relative_retrieval_scores(
    documents: Sequence[Document], scores: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Each passage's retrieval score divided by the best of the question's passages (0 for a passage without one).

    ``scores[document id]`` when given (a retriever's own list), else the document's ``score``. Relative scores
    lie in [0, 1] whatever the retriever's scale (BM25's grows with the corpus, cosines do not), so a weight
    tuned on one corpus means the same on another.
    """
    raw = {d.id: float((scores or {}).get(d.id, d.score) or 0.0) for d in documents}
    best = max(raw.values(), default=0.0)
    return {key: value / best if best > 0 else 0.0 for key, value in raw.items()}


def _answer(question: str, candidate: Candidate, score: float, context_chars: int) -> ExtractedAnswer:
    content = candidate.document.content
    left = _word_boundary(content, max(0, candidate.start - context_chars), step=-1)
    right = _word_boundary(content, min(len(content), candidate.end + context_chars), step=1)
    return ExtractedAnswer(
        query=question,
        score=score,
        data=content[candidate.start : candidate.end],
        document=candidate.document,
        context=content[left:right],
        document_offset=ExtractedAnswer.Span(candidate.start, candidate.end),
        context_offset=ExtractedAnswer.Span(candidate.start - left, candidate.end - left),
        meta={
            "answer_logit": candidate.logit,
            "reader_logit": candidate.logit if candidate.reader_logit is None else candidate.reader_logit,
            "no_answer_logit": candidate.null_logit,
        },
    )


def _word_boundary(text: str, index: int, step: int, reach: int = 30) -> int:
    """Move a snippet edge up to ``reach`` characters outwards so it does not cut a word in half."""
    for _ in range(reach):
        if index <= 0 or index >= len(text) or text[index - 1].isspace() or text[index].isspace():
            return index
        index += step
    return index
