"""Training groups for a corpus reader: each question with the passages the project's own BM25 retrieves for it.

A reader trained on one gold paragraph at a time never sees what `read` sees over a corpus: several passages, most
of them about the question's words but without its answer. Here each training question gets its gold paragraph
plus the best-scoring BM25 passages of the training corpus that do not contain a gold answer (hard negatives),
and a share of questions get only negatives, so that "no answer" is learned where the corpus lacks one. The
groups are written as a ``corpusqa-groups`` file for `corpusqa train --objective shared`.

This lives in pipelines/ because it joins the two rooms: retrieval from indexing, the training format from the
reader.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from corpusqa.indexing.store.keyword import KeywordIndex
from corpusqa.reader.squad_metric import SquadDataset
from corpusqa.reader.training_data import TrainExample, TrainingGroup, holds_an_answer

#: Passages retrieved per question to find its negatives among (gold and answer-holding ones are skipped).
SEARCH_DEPTH = 30


def mine_groups(
    dataset: SquadDataset,
    negatives: int = 3,
    no_answer_share: float = 0.25,
    questions: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[TrainingGroup], dict[str, float]]:
    """Groups for a seeded sample of the dataset's answerable questions, and counts describing them.

    Parameters:
        dataset: SQuAD-format questions; the distinct paragraphs of the same file are the corpus searched.
        negatives: hard negatives per question (fewer where BM25 finds fewer without an answer).
        no_answer_share: share of questions whose gold paragraph is left out, so the group has no answer.
        questions: how many questions to sample (None: all answerable ones).
        seed: the sample, and which questions lose their gold paragraph.
        progress: show a progress bar.
    """
    if negatives < 1:
        raise ValueError(f"negatives must be at least 1, not {negatives}")
    if not 0 <= no_answer_share <= 1:
        raise ValueError(f"no_answer_share must lie in [0, 1], not {no_answer_share}")
    answerable = [e for e in dataset.examples if e.answers and not e.is_impossible]
    rng = random.Random(seed)
    chosen = answerable if questions is None else rng.sample(answerable, min(questions, len(answerable)))
    paragraphs = list(dict.fromkeys(e.context for e in dataset.examples))
    index = KeywordIndex.build(np.arange(len(paragraphs)), paragraphs, through=len(paragraphs))
    groups, found = [], []
    for example in tqdm(chosen, desc="mining negatives", unit="question", disable=not progress):
        hits = index.search(example.question, SEARCH_DEPTH, None)
        hard = [
            paragraphs[row]
            for row, _ in hits
            if paragraphs[row] != example.context and not holds_an_answer(paragraphs[row], example.answers)
        ][:negatives]
        found.append(len(hard))
        passages = [TrainExample(example.question, p, None) for p in hard]
        if rng.random() >= no_answer_share:
            gold = TrainExample(example.question, example.context, example.answer_starts[0], example.answers[0])
            passages.insert(0, gold)
        if passages:
            groups.append(TrainingGroup(example.id, example.question, list(example.answers), passages))
    counts = {
        "questions": len(groups),
        "without_answer": sum(not g.answerable for g in groups),
        "negatives_per_question": float(np.mean(found)) if found else 0.0,
    }
    return groups, counts


def describe(groups: Sequence[TrainingGroup]) -> str:
    answerable = sum(g.answerable for g in groups)
    passages = sum(len(g.passages) for g in groups)
    return f"{len(groups)} questions ({len(groups) - answerable} without an answer), {passages} passages"
