"""Evaluate a reader on SQuAD-format data with the official metric, through the same ``read`` users run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from haystack import Document
from tqdm.auto import tqdm

from .core import ReadOptions, read
from .model import ReaderModel
from .squad_metric import SquadDataset, evaluate

#: Questions handed to ``read`` per call: large enough for full batches, small enough for a live progress bar.
_QUESTIONS_PER_CALL = 64


def predict_squad(
    reader: ReaderModel,
    dataset: SquadDataset,
    options: ReadOptions = ReadOptions(),
    limit: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, str], dict[str, float]]:
    """Predictions (id -> answer text, "" when the reader abstains on v2.0) and na_probs (id -> P(no answer)).

    na_prob is sigmoid(null_logit - best_span_logit): monotone in the reader's abstention margin, so the
    official threshold sweep over it finds the best ``no_answer_threshold`` (its logit).
    """
    examples = dataset.examples[:limit] if limit else dataset.examples
    options = replace(options, top_k=1, no_answer=True)
    predictions: dict[str, str] = {}
    na_probs: dict[str, float] = {}
    bar = tqdm(total=len(examples), desc="evaluating", unit="question", disable=not progress)
    for begin in range(0, len(examples), _QUESTIONS_PER_CALL):
        chunk = examples[begin : begin + _QUESTIONS_PER_CALL]
        passages = [[Document(id=f"{e.id}-context", content=e.context)] for e in chunk]
        for example, answers in zip(chunk, read(reader, [e.question for e in chunk], passages, options)):
            spans = [a for a in answers if a.data is not None]
            abstains = answers[0].data is None
            if not spans:
                predictions[example.id], na_probs[example.id] = "", 1.0
                continue
            margin = spans[0].meta["no_answer_logit"] - spans[0].meta["answer_logit"]
            na_probs[example.id] = _sigmoid(margin)
            predictions[example.id] = "" if abstains and dataset.version == "2.0" else spans[0].data
        bar.update(len(chunk))
    bar.close()
    return predictions, na_probs


def evaluate_reader(
    reader: ReaderModel,
    dataset: SquadDataset,
    options: ReadOptions = ReadOptions(),
    limit: int | None = None,
    progress: bool = True,
    output_dir: Path | None = None,
) -> dict[str, float]:
    """Official metrics of the reader on ``dataset``; on v2.0 also the best no-answer threshold in logit units.

    With ``output_dir``, writes predictions.json (and na_probs.json for v2.0) in the official formats.
    """
    predictions, na_probs = predict_squad(reader, dataset, options, limit, progress)
    if limit:
        dataset = SquadDataset(version=dataset.version, examples=dataset.examples[:limit])
    is_v2 = dataset.version == "2.0"
    metrics = evaluate(dataset, predictions, na_probs if is_v2 else None)
    if is_v2:
        metrics["best_f1_no_answer_threshold"] = _threshold_logit(metrics["best_f1_thresh"])
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "predictions.json").write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
        if is_v2:
            (output_dir / "na_probs.json").write_text(json.dumps(na_probs), encoding="utf-8")
    return metrics


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _threshold_logit(probability: float) -> float:
    """The official sweep's na_prob threshold t as the reader's threshold: abstain iff null - best > logit(t)."""
    probability = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(probability / (1 - probability))
