"""What a reader is trained on: (question, passage) pairs, grouped by question.

Two sources:
  * a SQuAD-format file: each question with its own paragraph, plus optionally a share of no-answer pairs with
    another paragraph of the same article (``make_negatives``); each question is its own group;
  * a groups file (``corpusqa-groups``, written by `corpusqa mine-negatives`): each question with the passages a
    retriever found for it, the gold one (when kept) and hard negatives that do not contain a gold answer. A group
    without a gold passage teaches the reader to abstain over a corpus that does not hold the answer.

Groups are the unit of shared normalization (``shared_norm``): one softmax over all windows of a group.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .squad_metric import SquadExample, load_squad

GROUPS_FORMAT = "corpusqa-groups"
GROUPS_VERSION = 1


@dataclass(frozen=True)
class TrainExample:
    """One (question, passage) pair to learn from; `answer_start is None` means the passage does not answer."""

    question: str
    context: str
    answer_start: int | None
    answer_text: str = ""


@dataclass(frozen=True)
class TrainingGroup:
    """A question and the passages it is trained on together: at most one answers it (``answer_start``)."""

    id: str
    question: str
    answers: list[str]
    passages: list[TrainExample] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return any(p.answer_start is not None for p in self.passages)


def to_train_examples(records: Sequence[SquadExample]) -> list[TrainExample]:
    """Pair each question with its own paragraph and its first gold answer (none for unanswerable v2.0 ones)."""
    return [
        TrainExample(r.question, r.context, None)
        if r.is_impossible or not r.answers
        else TrainExample(r.question, r.context, r.answer_starts[0], r.answers[0])
        for r in records
    ]


def article_paragraphs(records: Sequence[SquadExample]) -> dict[str, list[str]]:
    """The distinct paragraphs of every article, in file order: the pool that negatives are drawn from."""
    pools: dict[str, dict[str, None]] = {}
    for r in records:
        pools.setdefault(r.title, {})[r.context] = None
    return {title: list(contexts) for title, contexts in pools.items()}


def make_negatives(
    records: Sequence[SquadExample], paragraphs: Mapping[str, list[str]], fraction: float, seed: int
) -> list[TrainExample]:
    """For a seeded `fraction` of questions, pair the question with another paragraph of its article as no-answer.

    SQuAD 1.1 never shows the reader a passage that fails to answer; these pairs teach it to abstain. A paragraph
    that happens to contain a gold answer is never used, and a question without such a paragraph gets none.
    """
    return [negative for _, negative in _indexed_negatives(records, paragraphs, fraction, seed)]


def _indexed_negatives(records, paragraphs, fraction, seed) -> list[tuple[int, TrainExample]]:
    """``make_negatives``, each with the index of the record (question) it was made for."""
    rng = random.Random(seed)
    negatives = []
    for number, r in enumerate(records):
        if rng.random() >= fraction:
            continue
        golds = [a.lower() for a in r.answers]
        others = [
            p for p in paragraphs.get(r.title, []) if p != r.context and not any(g in p.lower() for g in golds)
        ]
        if others:
            negatives.append((number, TrainExample(r.question, rng.choice(others), None)))
    return negatives


def holds_an_answer(passage: str, answers: Sequence[str]) -> bool:
    """Whether a gold answer text occurs in the passage (case-insensitive): such a passage is never a negative."""
    lowered = passage.lower()
    return any(a.strip() and a.strip().lower() in lowered for a in answers)


def save_groups(path: Path, groups: Sequence[TrainingGroup], source: Mapping[str, object]) -> None:
    """Write groups as JSON, with ``source`` saying how they were made (retriever, counts, seed)."""
    document = {
        "format": GROUPS_FORMAT,
        "version": GROUPS_VERSION,
        "source": dict(source),
        "groups": [asdict(g) for g in groups],
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)


def load_groups(path: Path) -> list[TrainingGroup]:
    """Read a groups file; a malformed one is refused with the group and field that is wrong."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if not is_groups_document(document):
        raise ValueError(f"{path}: not a {GROUPS_FORMAT} file")
    if document.get("version") != GROUPS_VERSION:
        raise ValueError(f"{path}: {GROUPS_FORMAT} version {document.get('version')!r}, expected {GROUPS_VERSION}")
    groups = []
    for number, raw in enumerate(document["groups"]):
        try:
            passages = [TrainExample(**p) for p in raw["passages"]]
            group = TrainingGroup(str(raw["id"]), raw["question"], list(raw["answers"]), passages)
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: group {number}: {error}") from error
        for passage in passages:
            if passage.answer_start is not None and not (
                passage.context[passage.answer_start :].startswith(passage.answer_text)
            ):
                raise ValueError(f"{path}: group {number} ({group.id}): answer_text is not at answer_start")
        groups.append(group)
    return groups


def is_groups_document(document: object) -> bool:
    return isinstance(document, dict) and document.get("format") == GROUPS_FORMAT


def is_groups_file(path: Path) -> bool:
    """Whether ``path`` is a groups file rather than SQuAD (read only as far as its first bytes)."""
    with open(path, encoding="utf-8") as handle:
        return f'"format": "{GROUPS_FORMAT}"' in handle.read(200)


def load_training_examples(
    paths: Sequence[Path], limit: int | None, negatives: float, seed: int
) -> tuple[list[TrainExample], list[int]]:
    """The examples a run trains on and, for each, the index of its group (question).

    Parameters:
        paths: SQuAD-format files or groups files, trained on together: their questions in file order.
        limit: keep only the first ``limit`` questions (groups), counted across the files.
        negatives: SQuAD files only: the share of questions that also get a random no-answer paragraph of their
            article, in the question's group.
        seed: draws those negatives.
    """
    examples: list[TrainExample] = []
    group_of: list[int] = []
    questions = 0
    for path in paths:
        left = None if limit is None else limit - questions
        if left is not None and left <= 0:
            break
        found, groups = _file_examples(path, left, negatives, seed)
        examples += found
        group_of += [questions + group for group in groups]
        questions += max(groups, default=-1) + 1
    return examples, group_of


def _file_examples(path: Path, limit: int | None, negatives: float, seed: int) -> tuple[list[TrainExample], list[int]]:
    """One file's examples and their groups, numbered from 0 (see ``load_training_examples``)."""
    if is_groups_file(path):
        if negatives:
            raise ValueError(f"{path}: a groups file brings its own negatives; drop --negatives")
        examples, group_of = [], []
        for number, group in enumerate(load_groups(path)[:limit]):
            examples += group.passages
            group_of += [number] * len(group.passages)
        return examples, group_of
    records = load_squad(path).examples
    questions = records[:limit]
    positives = to_train_examples(questions)
    extra = _indexed_negatives(questions, article_paragraphs(records), negatives, seed)  # in their question's group
    return positives + [e for _, e in extra], list(range(len(positives))) + [number for number, _ in extra]
