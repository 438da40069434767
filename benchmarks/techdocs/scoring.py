"""Score one top answer against a question's gold answers, and name the kind of miss.

A *gold passage* is a passage of the question's source file that contains a gold answer (as written, or
after SQuAD normalisation, so line breaks and punctuation do not hide it). A miss on an answerable question is:

* ``abstained``: the reader answered "no answer";
* ``table debris``: the answer holds a table delimiter ('|') or is mostly punctuation;
* ``boundary``: the answer overlaps a gold answer in its passage but is not it ("8. -X", "MiB");
* ``wrong passage``: the answer comes from a passage that is not a gold passage, split by whether a gold
  passage was among those read (the reader preferred another passage) or not (retrieval missed it);
* ``right passage, wrong span``: from a gold passage, but elsewhere in it (a related number, a neighbour).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from corpusqa.reader.squad_metric import exact_match, f1, normalize_answer

#: Marks that mean nothing as a word of their own at an answer's edge.
BARE_MARKS = frozenset("-\u2013\u2014\u2022*#.,;:!?")

CATEGORIES = (
    "abstained",
    "table debris",
    "boundary",
    "wrong passage (gold read)",
    "wrong passage (gold not retrieved)",
    "right passage, wrong span",
)


def best_em_f1(prediction: str, golds: Sequence[str]) -> tuple[int, float]:
    """The maximum EM and F1 over the gold answers (SQuAD v1.1 rule; an empty prediction scores 0)."""
    if not prediction:
        return 0, 0.0
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g, version="1.1") for g in golds)


def contains_gold(text: str, golds: Sequence[str]) -> bool:
    """Whether ``text`` holds a gold answer: as whole normalised tokens, or as written (markup may glue it to
    a word: "{file}`$HOME/.config/pip/pip.conf`")."""
    padded = f" {normalize_answer(text)} "
    for gold in golds:
        if normalize_answer(gold) and f" {normalize_answer(gold)} " in padded:
            return True
        if len(gold) >= 4 and re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", text):
            return True
    return False


def is_gold_passage(passage, source: str | None, golds: Sequence[str]) -> bool:
    return passage.meta.get("file_name") == source and contains_gold(passage.content or "", golds)


def is_table_debris(prediction: str) -> bool:
    """A table delimiter in the answer, or fewer letters and digits than other characters."""
    if "|" in prediction or "---" in prediction:
        return True
    visible = [c for c in prediction if not c.isspace()]
    return bool(visible) and sum(c.isalnum() for c in visible) * 2 < len(visible)


def has_edge_debris(text: str) -> bool:
    """The answer starts or ends with a table delimiter, a dash, bullet, prompt or sentence mark standing alone
    ("| 4.5", "19 -", "* filename completion"; a unit is no debris: "0.1 %"), sentence punctuation after its
    last word ("8.") or a bracket whose partner is outside it ("2.2)")."""
    words = text.split()
    if not words or not any(c.isalnum() for c in text):
        return False
    first, last = words[0], words[-1]
    return (
        "|" in (first[0], last[-1])
        or BARE_MARKS.issuperset(first)
        or BARE_MARKS.issuperset(last)
        or last[-1] in ".,;:!?"
        or (last[-1] in ")]}" and "([{"[")]}".index(last[-1])] not in text)
        or (first[0] in "([{" and ")]}"["([{".index(first[0])] not in text)
    )


def crosses_cells(text: str) -> bool:
    """A table delimiter inside the answer: it runs over more than one cell ("674 MiB | 311 MiB")."""
    return "|" in text.strip().strip("|")


def overlaps_gold(span: tuple[int, int], passage_text: str, golds: Sequence[str]) -> bool:
    """The answer's characters overlap an occurrence of a gold answer in its passage (white space and case
    may differ)."""
    for gold in golds:
        words = [re.escape(w) for w in gold.split()]
        if words:
            for found in re.finditer(r"\s+".join(words), passage_text, flags=re.IGNORECASE):
                if found.start() < span[1] and span[0] < found.end():
                    return True
    return False


def miss_category(
    prediction: str | None,
    span: tuple[int, int] | None,
    passage,
    passages_read: Sequence,
    source: str | None,
    golds: Sequence[str],
) -> str:
    """The category (one of ``CATEGORIES``) of a top answer that does not match any gold answer exactly."""
    if not prediction:
        return "abstained"
    if is_table_debris(prediction):
        return "table debris"
    if span is not None and overlaps_gold(span, passage.content or "", golds):
        return "boundary"
    if not is_gold_passage(passage, source, golds):
        if any(is_gold_passage(p, source, golds) for p in passages_read):
            return "wrong passage (gold read)"
        return "wrong passage (gold not retrieved)"
    return "right passage, wrong span"
