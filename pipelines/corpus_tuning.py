"""Tune how a reader answers over a corpus, where it is used: its no-answer threshold and its retrieval weight.

Both depend on the retriever (its score scale, how often the gold passage is missing), so they are tuned per
retriever, on training questions asked of a corpus of training paragraphs, never on dev:
  * answerable questions: asked of the whole corpus;
  * unanswerable ones: asked with their own article filtered out, so no passage read holds their answer.
Each question's passages are read once; every (weight, threshold) pair is then scored from those candidates.

  1. The retrieval weight (BERTserini's interpolation: a span's logit plus weight times its passage's retrieval
     score) is the grid value with the best EM on the answerable questions; a weight of 0 stays unless another
     value does strictly better.
  2. The threshold is the lowest (abstaining most) at which answerable EM drops by at most ``max_em_drop`` points
     against never abstaining: users lose few answers, and questions the corpus cannot answer are declined.
     The drop that counts is not the one seen on the sample but its upper confidence bound (Clopper-Pearson,
     one-sided, at ``confidence``) for questions like them: the lowest allowed threshold is the one whose
     sampled drop is luckiest, so a threshold held to its sampled drop loses more on new questions. With
     1,000 answerable questions and 2 points allowed, the sample may lose 1.3 points; with 500, 1.0.
     A threshold that loses no right answer on the sample is always allowed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import beta
from tqdm.auto import tqdm

from corpusqa.reader.model import CorpusSettings
from corpusqa.reader.squad_metric import SquadDataset, SquadExample, exact_match

from .query import QueryPipeline, retrieve

#: Retrieval weights tried, in units of 1 / (standard deviation of the retrieval scores of the passages read);
#: while the best is the largest tried, the grid doubles on, up to ``MAX_WEIGHT`` in the same units.
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
MAX_WEIGHT = 256.0


@dataclass(frozen=True)
class Reading:
    """One question's candidates, reduced to what scoring needs: (reader logit, null logit, relative retrieval
    score of the passage, text)."""

    answers: list[str]
    answerable: bool
    candidates: list[tuple[float, float, float, str]]


@dataclass
class TuningResult:
    settings: CorpusSettings
    #: Per weight tried: (weight, answerable EM without abstaining).
    weights: list[tuple[float, float]] = field(default_factory=list)
    #: At the chosen weight, per threshold: (threshold, answerable EM, share of unanswerable questions declined,
    #: upper bound of the EM drop on new questions).
    thresholds: list[tuple[float, float, float, float]] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)


def collect_readings(
    pipeline: QueryPipeline,
    examples: Sequence[SquadExample],
    unanswerable: int,
    passages: int,
    progress: bool = True,
) -> list[Reading]:
    """Retrieve for every question (the first ``unanswerable`` with their article filtered out) and read once."""
    from corpusqa.reader.core import read_candidates, relative_retrieval_scores

    reader = pipeline.reader.loaded
    retrieved = []
    for number, example in enumerate(tqdm(examples, desc="retrieving", unit="question", disable=not progress)):
        filters = {"field": "meta.title", "operator": "!=", "value": example.title} if number < unanswerable else None
        retrieved.append(retrieve(pipeline, example.question, passages, filters))
    options = replace(pipeline.reader.options, top_k=1)
    found = read_candidates(reader, [e.question for e in examples], retrieved, options, progress=progress)
    readings = []
    for number, (example, candidates) in enumerate(zip(examples, found)):
        relative = relative_retrieval_scores([c.document for c in candidates])  # as ``rank`` weighs them
        reduced = [
            (c.logit, c.null_logit, relative[c.document.id], c.document.content[c.start : c.end]) for c in candidates
        ]
        readings.append(Reading(list(example.answers), number >= unanswerable, reduced))
    return readings


def sweep(
    readings: Sequence[Reading],
    max_em_drop: float = 2.0,
    confidence: float = 0.9,
    grid: Sequence[float] = WEIGHT_GRID,
) -> TuningResult:
    """Choose the retrieval weight, then the threshold, from readings (see the module docstring).

    Parameters:
        readings: the sampled questions' candidates (``collect_readings``).
        max_em_drop: EM points on answerable questions that abstaining may cost.
        confidence: how sure the drop on new questions stays within ``max_em_drop``; 0 holds the sampled drop
            itself to it.
        grid: retrieval weights tried first (see ``WEIGHT_GRID``).
    """
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence must lie in [0, 1), not {confidence}")
    scores = [s for r in readings for _, _, s, _ in r.candidates]
    spread = float(np.std(scores)) if scores else 0.0
    answerable = [r for r in readings if r.answerable]
    unanswerable = [r for r in readings if not r.answerable]

    def em(units: float) -> tuple[float, float]:
        w = units / spread if spread > 0 else 0.0
        return w, 100 * float(np.mean([_best(r, w)[1] for r in answerable])) if answerable else 0.0

    def choose(pairs):
        return max(pairs, key=lambda pair: (round(pair[1], 9), -pair[0]))  # ties: the smaller weight

    units = list(grid) if spread > 0 else [0.0]
    tried = [em(k) for k in units]
    while units[-1] > 0 and units[-1] * 2 <= MAX_WEIGHT and choose(tried) == tried[-1]:
        units.append(units[-1] * 2)
        tried.append(em(units[-1]))
    weight, best_em = choose(tried)
    margins_yes = np.array([_best(r, weight)[0] for r in answerable])
    correct_yes = np.array([_best(r, weight)[1] for r in answerable], dtype=bool)
    margins_no = np.array([_best(r, weight)[0] for r in unanswerable])
    table, allowed = [], []
    for threshold in sorted(set(margins_yes.tolist()) | set(margins_no.tolist()) | {math.inf}):
        lost = int(np.sum(correct_yes & (margins_yes > threshold)))
        em = 100 * (int(correct_yes.sum()) - lost) / len(answerable) if len(answerable) else 0.0
        declined = 100 * float(np.mean(margins_no > threshold)) if len(unanswerable) else 0.0
        bound = em_drop_bound(lost, len(answerable), confidence)
        table.append((threshold, em, declined, bound))
        if lost == 0 or bound <= max_em_drop:
            allowed.append(table[-1])
    chosen = min(allowed, key=lambda row: row[0])
    threshold = chosen[0] if math.isfinite(chosen[0]) else max(margins_yes.max(initial=0.0), 0.0)
    shown = _sparse(table, chosen)
    evidence = {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "em_never_abstaining": round(best_em, 2),
        "em": round(chosen[1], 2),
        "unanswerable_declined": round(chosen[2], 2),
        "max_em_drop": max_em_drop,
        "confidence": confidence,
        "em_drop_bound": round(chosen[3], 2),
        "em_without_retrieval_weight": round(tried[0][1], 2),
    }
    return TuningResult(CorpusSettings(float(threshold), float(weight)), tried, shown, evidence)


def em_drop_bound(lost: int, answerable: int, confidence: float) -> float:
    """EM points that new questions may lose, at ``confidence``, when ``lost`` of ``answerable`` sampled questions
    lost their right answer: the one-sided Clopper-Pearson upper bound of that share (the share itself at
    confidence 0)."""
    if answerable == 0:
        return 0.0
    if confidence == 0 or lost == answerable:
        return 100 * lost / answerable
    return 100 * float(beta.ppf(confidence, lost + 1, answerable - lost))


def _best(reading: Reading, weight: float) -> tuple[float, bool]:
    """(null logit minus the best combined span logit, whether that span is a gold answer) for a weight."""
    if not reading.candidates:
        return math.inf, False
    logit, null, score, text = max(reading.candidates, key=lambda c: c[0] + weight * c[2])
    correct = reading.answerable and any(exact_match(text, gold) for gold in reading.answers)
    return null - (logit + weight * score), bool(correct)


def _sparse(table: list[tuple[float, ...]], chosen: tuple[float, ...]) -> list[tuple[float, ...]]:
    """About a dozen rows of the threshold sweep, evenly spread by share declined, and the chosen one."""
    picks = {round(q * (len(table) - 1)) for q in np.linspace(0, 1, 11)}
    return sorted({table[i] for i in picks} | {chosen}, key=lambda row: row[0])


def sample_questions(dataset: SquadDataset, questions: int, seed: int) -> list[SquadExample]:
    """A seeded sample of the answerable questions."""
    answerable = [e for e in dataset.examples if e.answers and not e.is_impossible]
    return random.Random(seed).sample(answerable, min(questions, len(answerable)))
