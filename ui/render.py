"""HTML for answers and passages: each answer marked at the reader's own character offsets.

Haystack's old demo found the answer in its context with ``context.find(answer)``: the first occurrence,
often not the one the reader read (a year or a name that a passage repeats). Here the mark goes exactly at
``context_offset`` / ``document_offset``, and all text around it is HTML-escaped, so a passage's own markup
is shown as text and never runs.
"""

from __future__ import annotations

import re
from html import escape

from haystack import Document
from haystack.dataclasses import ExtractedAnswer

from corpusqa.pipelines.query import source_label

#: Translucent amber under the page's own text colour: legible on Streamlit's light and dark backgrounds
#: alike, and the bold weight marks the answer for readers who do not see the colour.
MARK_STYLE = (
    "background-color: rgba(255, 184, 0, 0.42); color: inherit; font-weight: 600; "
    "padding: 0 0.15em; border-radius: 0.2em"
)
#: A whole passage keeps its line breaks and scrolls rather than pushing the other answers off screen; it is
#: the offset parent of its mark, so the mark's offsetTop is its depth in the passage.
PASSAGE_STYLE = "white-space: pre-wrap; max-height: 22em; overflow-y: auto; line-height: 1.5; position: relative"
#: Run by the browser after a passage with a marked answer (st.html with JavaScript allowed; the passage's text
#: is escaped, so this is the only script): whenever the passage comes into view (its expander opens), it
#: scrolls to put the answer a third of the way down, rather than showing the passage's start.
SCROLL_TO_ANSWER = """<script>(() => {
  const box = document.currentScript.previousElementSibling, mark = box.querySelector("mark");
  let shown = false;
  new ResizeObserver(() => {
    const visible = box.clientHeight > 0;
    if (visible && !shown) box.scrollTop = mark.offsetTop - box.clientHeight / 3;
    shown = visible;
  }).observe(box);
})();</script>"""


def answer_header(rank: int, answer: ExtractedAnswer) -> str:
    """Rank, answer and score on one line, the source under them."""
    text = " ".join((answer.data or "").split())
    where = source(answer.document, answer.document_offset.start)
    return (
        '<div class="corpusqa-answer" style="display: flex; justify-content: space-between; gap: 1em; '
        'align-items: baseline">'
        f'<strong style="font-size: 1.1em">{rank}. {escape(text)}</strong>'
        f'<strong title="the reader\'s score: one share of 100% across all answers and no-answer">'
        f"{percent(answer.score)}</strong></div>"
        f'<div style="opacity: 0.75; font-size: 0.9em">{escape(where)}</div>'
    )


def marked(text: str, start: int, end: int) -> str:
    """``text`` as HTML with ``text[start:end]`` in a ``<mark>``; offsets outside ``text`` raise ValueError
    (they would mean the answer and its passage disagree, which must not be hidden by a guess)."""
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span {start}:{end} lies outside a text of {len(text)} characters")
    return f'{escape(text[:start])}<mark style="{MARK_STYLE}">{escape(text[start:end])}</mark>{escape(text[end:])}'


def answer_in_context(answer: ExtractedAnswer) -> str:
    """The answer marked in the reader's context snippet, with "…" where the snippet cuts its passage."""
    context, span = answer.context or "", answer.context_offset
    snippet_start = answer.document_offset.start - span.start
    before = "…" if snippet_start > 0 else ""
    after = "…" if snippet_start + len(context) < len(answer.document.content or "") else ""
    return f'<p class="corpusqa-context">{before}{marked(context, span.start, span.end)}{after}</p>'


def answer_in_passage(answer: ExtractedAnswer) -> str:
    """The whole passage with the answer marked at ``document_offset``, scrolled to it when shown
    (``SCROLL_TO_ANSWER``); PDF page breaks shown as line breaks."""
    text = (answer.document.content or "").replace("\f", "\n")  # same length: the offsets still hold
    span = answer.document_offset
    box = f'<div class="corpusqa-passage" style="{PASSAGE_STYLE}">{marked(text, span.start, span.end)}</div>'
    return box + SCROLL_TO_ANSWER


def passage(document: Document) -> str:
    """A passage without an answer in it (what the reader read when it abstained)."""
    text = (document.content or "").replace("\f", "\n")
    return f'<div class="corpusqa-passage" style="{PASSAGE_STYLE}">{escape(text)}</div>'


def source(document: Document, offset: int = 0) -> str:
    """The file's name and, in a PDF, the page of the character at ``offset`` (see ``source_label``)."""
    return source_label(document, offset, unknown="unknown source")


def percent(score: float) -> str:
    """A score as analysts read it: a whole percentage, never a misleading 0% or 100%."""
    if score < 0.005:
        return "<1%"
    if score > 0.995:
        return ">99%"
    return f"{score:.0%}"


def markdown_escaped(text: str) -> str:
    """``text`` shown as written where Streamlit renders markdown (widget labels): its markup characters escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$:])", r"\\\1", " ".join(text.split()))


def occurrence_label(passage: str, span: tuple[int, int], reach: int = 40) -> str:
    """One of several occurrences of a typed correction, in the words around it (markdown), to pick from."""
    start, end = span
    before, after = passage[max(0, start - reach) : start], passage[end : end + reach]
    return f"…{markdown_escaped(before)} **{markdown_escaped(passage[start:end])}** {markdown_escaped(after)}…"
