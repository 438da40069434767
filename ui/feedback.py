"""Analysts' verdicts on answers, kept in their own SQLite file in the store's folder, and exported as SQuAD 2.0
training data for `corpusqa train`.

One row per judged answer, keyed by (question, passage id, span): judging again changes the verdict, clearing
it deletes the row. The passage's text is stored with the verdict, since re-indexing may change or drop the
passage while the training example must keep the text that was judged. The export (``squad``) turns
  * an approved answer into an example with that span, at its real ``answer_start`` in the passage;
  * a rejected answer with a corrected span into an example with the corrected span;
  * a rejected answer whose passage "does not answer" into an unanswerable example (``is_impossible``),
    which teaches the reader to abstain on such passages;
  * a rejected answer without a correction into nothing: it says only what the answer is not, which SQuAD
    data cannot express. It is kept, and counted, so an analyst can still add the correction later.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack.dataclasses import ExtractedAnswer

FEEDBACK_FILE = "feedback.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY,
    question TEXT NOT NULL,
    passage_id TEXT NOT NULL,
    passage TEXT NOT NULL,
    title TEXT NOT NULL,
    file_path TEXT,
    answer_start INTEGER NOT NULL,
    answer_end INTEGER NOT NULL,
    approved INTEGER NOT NULL,
    correction_start INTEGER,  -- a rejected answer's right span in the passage
    correction_end INTEGER,
    unanswerable INTEGER NOT NULL DEFAULT 0,  -- rejected: the passage does not answer the question
    judged_at REAL NOT NULL,
    UNIQUE (question, passage_id, answer_start, answer_end)
);
"""


@dataclass(frozen=True)
class Judged:
    """The answer an analyst judges: the question, the passage as it was read, and the span in it."""

    question: str
    passage_id: str
    passage: str
    title: str
    file_path: str | None
    start: int
    end: int

    @classmethod
    def from_answer(cls, answer: ExtractedAnswer) -> Judged:
        document = answer.document
        meta = document.meta
        title = meta.get("file_name") or meta.get("title") or meta.get("file_path") or document.id
        return cls(
            answer.query, document.id, document.content or "", title, meta.get("file_path"),
            answer.document_offset.start, answer.document_offset.end,
        )  # fmt: skip

    @property
    def key(self) -> str:
        """Stable and short: names this answer's widgets across reruns."""
        parts = [self.question, self.passage_id, str(self.start), str(self.end)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Verdict:
    approved: bool
    correction: tuple[int, int] | None = None
    unanswerable: bool = False


class FeedbackStore:
    """Verdicts in a SQLite file; one short connection per call, so any thread may use it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.executescript(_SCHEMA)

    @classmethod
    def beside(cls, store_folder: str | Path) -> FeedbackStore:
        """The feedback file of a store: in its folder, apart from the store's own database."""
        return cls(Path(store_folder) / FEEDBACK_FILE)

    def approve(self, judged: Judged) -> None:
        self._save(judged, Verdict(approved=True))

    def reject(self, judged: Judged, correction: tuple[int, int] | None = None, unanswerable: bool = False) -> None:
        """A wrong answer, optionally with the right span of the same passage, or with the passage found not
        to answer at all."""
        if correction is not None and unanswerable:
            raise ValueError("a correction gives the answer; it cannot also say the passage has none")
        if correction is not None and not 0 <= correction[0] < correction[1] <= len(judged.passage):
            raise ValueError(f"correction {correction} is not a span of the passage ({len(judged.passage)} characters)")
        self._save(judged, Verdict(approved=False, correction=correction, unanswerable=unanswerable))

    def forget(self, judged: Judged) -> None:
        with self._connection() as db:
            db.execute(
                "DELETE FROM verdicts WHERE question = ? AND passage_id = ? AND answer_start = ? AND answer_end = ?",
                (judged.question, judged.passage_id, judged.start, judged.end),
            )

    def verdict(self, judged: Judged) -> Verdict | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT approved, correction_start, correction_end, unanswerable FROM verdicts "
                "WHERE question = ? AND passage_id = ? AND answer_start = ? AND answer_end = ?",
                (judged.question, judged.passage_id, judged.start, judged.end),
            ).fetchone()
        if row is None:
            return None
        approved, start, end, unanswerable = row
        return Verdict(bool(approved), None if start is None else (start, end), bool(unanswerable))

    def counts(self) -> dict[str, int]:
        """Verdicts by kind; ``exported`` is how many become training examples."""
        with self._connection() as db:
            approved, corrected, unanswerable, rejected = db.execute(
                "SELECT COALESCE(SUM(approved), 0), COALESCE(SUM(correction_start IS NOT NULL), 0), "
                "COALESCE(SUM(unanswerable), 0), COALESCE(SUM(NOT approved), 0) FROM verdicts"
            ).fetchone()
        return {
            "approved": approved, "rejected": rejected, "corrected": corrected, "unanswerable": unanswerable,
            "exported": approved + corrected + unanswerable,
        }  # fmt: skip

    def squad(self) -> dict[str, Any]:
        """The exportable verdicts as SQuAD v2.0 data: an article per source file, a paragraph per passage."""
        articles: dict[str, dict[str, list[dict[str, Any]]]] = {}
        with self._connection() as db:
            rows = db.execute(
                "SELECT id, question, passage, title, answer_start, answer_end, approved, correction_start, "
                "correction_end, unanswerable FROM verdicts ORDER BY id"
            ).fetchall()
        for number, question, passage, title, start, end, approved, fix_start, fix_end, unanswerable in rows:
            if approved:
                answers = [{"text": passage[start:end], "answer_start": start}]
            elif fix_start is not None:
                answers = [{"text": passage[fix_start:fix_end], "answer_start": fix_start}]
            elif unanswerable:
                answers = []
            else:
                continue
            qa = {"id": f"feedback-{number}", "question": question, "answers": answers, "is_impossible": not answers}
            articles.setdefault(title, {}).setdefault(passage, []).append(qa)
        data = [
            {"title": title, "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()
        ]
        return {"version": "v2.0", "data": data}

    def squad_json(self) -> str:
        return _squad_text(self.squad())

    def export(self, path: str | Path) -> int:
        """Write ``squad()`` to ``path``; returns the number of examples written."""
        squad = self.squad()
        Path(path).write_text(_squad_text(squad), encoding="utf-8")
        return sum(len(paragraph["qas"]) for article in squad["data"] for paragraph in article["paragraphs"])

    def _save(self, judged: Judged, verdict: Verdict) -> None:
        start, end = verdict.correction or (None, None)
        with self._connection() as db:
            db.execute(
                "INSERT INTO verdicts (question, passage_id, passage, title, file_path, answer_start, answer_end, "
                "approved, correction_start, correction_end, unanswerable, judged_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (question, passage_id, answer_start, answer_end) DO UPDATE SET "
                "passage = excluded.passage, approved = excluded.approved, "
                "correction_start = excluded.correction_start, correction_end = excluded.correction_end, "
                "unanswerable = excluded.unanswerable, judged_at = excluded.judged_at",
                (judged.question, judged.passage_id, judged.passage, judged.title, judged.file_path, judged.start,
                 judged.end, verdict.approved, start, end, verdict.unanswerable, time.time()),
            )  # fmt: skip

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection whose statements commit together on leaving (or roll back on an error)."""
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db


def _squad_text(squad: dict[str, Any]) -> str:
    return json.dumps(squad, ensure_ascii=False, indent=1) + "\n"


def occurrences(passage: str, typed: str) -> list[tuple[int, int]]:
    """Every span of ``passage`` that reads as ``typed`` (case and runs of white space aside): where an
    analyst's typed correction may stand. Several mean the analyst must pick one; none, that it is not a span
    of this passage, which a SQuAD example needs."""
    words = typed.split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(map(re.escape, words)), re.IGNORECASE)
    return [(match.start(), match.end()) for match in pattern.finditer(passage)]
