"""Answers as the CLI prints them for people, from their JSON record (``answers.answers_json``/``result_json``):
the same text whether the record was made in this process or came from `corpusqa serve`.

Text is shown with each run of white space (line breaks, indentation) as one space; the offsets in the JSON
are untouched, and still point into the passage as stored.
"""

from __future__ import annotations

import re

#: Passages shown when the reader abstains, and how much of each.
CLOSEST_PASSAGES, PASSAGE_PREVIEW = 3, 160
_SPACE = re.compile(r"\s+")


def collapsed(text: str) -> str:
    """``text`` with every run of white space as one space."""
    return _SPACE.sub(" ", text)


def marked(answer: dict) -> str:
    """The answer inside its context snippet, marked with »«."""
    context, start, end = answer["context"], answer["context_start"], answer["context_end"]
    before, after = collapsed(context[:start]).lstrip(), collapsed(context[end:]).rstrip()
    return f"…{before}»{collapsed(context[start:end])}«{after}…"


def record_lines(record: dict) -> list[str]:
    """A question's record as lines: the question (with timings, when asked of a corpus), then either the
    answers, best first, or the reader's abstention with the closest passages and any weaker candidates."""
    timing = ""
    if "retrieval_seconds" in record:
        timing = (
            f"   (retrieval {record['retrieval_seconds'] * 1000:.0f} ms, "
            f"reading {record['reading_seconds'] * 1000:.0f} ms)"
        )
    lines = [f"Q: {collapsed(record['question'])}{timing}"]
    no_answer = record.get("no_answer")
    if record["abstained"]:
        sure = f" ({no_answer['score']:.1%})" if no_answer else ""
        lines.append(f"  No answer found: the reader abstains{sure}.")
        passages = record.get("passages", [])[:CLOSEST_PASSAGES]
        if passages:
            lines.append("  The best passages were:")
            lines += [f"   - {p['source']}: {collapsed((p['content'] or '')[:PASSAGE_PREVIEW]).strip()}…" for p in passages]
        if record["answers"]:
            lines.append("  Weaker candidates:")
    for rank, answer in enumerate(record["answers"], 1):
        lines.append(f"  {rank}. {answer['score']:6.1%}  {collapsed(answer['answer'])}")
        lines.append(f"      {answer['source']}  {marked(answer)}")
    if no_answer and not record["abstained"]:
        lines.append(f"  No answer: {no_answer['score']:.1%}")
    return lines
