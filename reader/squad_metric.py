"""The official SQuAD v1.1 and v2.0 metrics (EM / F1), reproduced to the last bit.

Why our own copy: readers are compared with published numbers, which come from the two official
evaluation scripts; any drift in normalisation, in the max over gold answers, in the empty-answer
rule or even in the order of float summation shows up in the digits. The rules below follow the
scripts' behaviour (not their code) and each differs between versions only where the scripts do:

* ``normalize_answer``: lower-case, drop ``string.punctuation``, drop the whole words a/an/the,
  collapse white space (identical in both scripts).
* v1.1: per question, EM and F1 are the max over all gold texts; F1 is 0 when no token is shared.
* v2.0: gold texts that normalise to "" are dropped, and a question left without gold has the single
  gold "" (unanswerable). F1 is ``gold_toks == pred_toks`` when either side has no tokens, so only an
  empty prediction scores on an unanswerable question. A question "has an answer" when its
  ``answers`` list is non-empty (the official rule; the ``is_impossible`` flag is not consulted).
  ``na_probs`` / ``na_prob_thresh`` and the ``best_*`` threshold sweep follow the v2.0 script.

Missing predictions score 0 and stay in the denominator, in both versions. That is the v1.1 script's
rule. The v2.0 script cannot score such a file at all (it divides the overall scores by the number of
*predicted* questions, then raises KeyError when it builds the HasAns/NoAns split), so on every input
it does score, counting a missing prediction as 0 gives its numbers.

Scores are summed left to right in file order with plain float addition, as the scripts did under
the Pythons that produced the published numbers; ``sum()`` is avoided because Python 3.12+ sums floats
with compensation, which can move the last digit.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SquadDataset",
    "SquadExample",
    "evaluate",
    "evaluate_files",
    "exact_match",
    "f1",
    "load_squad",
    "normalize_answer",
]

logger = logging.getLogger(__name__)

V1 = "1.1"
V2 = "2.0"

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# --------------------------------------------------------------------------- answer-level metrics


def normalize_answer(s: str) -> str:
    """Official SQuAD normalisation: lower, strip punctuation, drop a/an/the, collapse spaces.

    The order matters ("The." -> "the" -> "" only because punctuation goes before articles).
    """
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> int:
    """1 if the normalised strings are equal, else 0 (same rule in v1.1 and v2.0)."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, version: str = V2) -> float:
    """Token-level F1 of one prediction against one gold text.

    ``version`` matters only when a side has no tokens: v2.0 gives 1.0 if both are empty (a correct
    "no answer"), v1.1 always gives 0.0 there (it has no notion of an empty answer).
    """
    version = _check_version(version)
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if version == V2 and (not pred_toks or not gold_toks):
        return float(pred_toks == gold_toks)
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0.0
    # Same operations in the same order as the official scripts, so the floats agree bit for bit.
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


# --------------------------------------------------------------------------- data


@dataclass
class SquadExample:
    """One question with its paragraph and gold answers, as stored in a SQuAD JSON file."""

    id: str
    title: str
    question: str
    context: str
    answers: list[str]
    answer_starts: list[int]
    is_impossible: bool


@dataclass
class SquadDataset:
    """A SQuAD file's questions in file order (order fixes the float summation), and its version."""

    version: str  # "1.1" or "2.0": selects the scoring rules
    examples: list[SquadExample]


def load_squad(path: str | Path) -> SquadDataset:
    """Read a SQuAD v1.1 / v2.0 JSON file.

    Raises FileNotFoundError for a missing file and ValueError, naming the file and the offending
    field, for invalid JSON or anything not SQuAD-shaped (including duplicate question ids, which
    would make the score ambiguous).
    """
    path = Path(path)
    raw = _read_json(path, "SQuAD data")
    return _parse_squad(raw, str(path))


def _parse_squad(raw: Any, source: str) -> SquadDataset:
    def fail(where: str, problem: str) -> ValueError:
        return ValueError(f"{source}: {where}: {problem}")

    def get(obj: Any, key: str, kind: type, where: str) -> Any:
        if not isinstance(obj, dict):
            raise fail(where, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            raise fail(where, f"missing field {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise fail(f"{where}.{key}", f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    if not isinstance(raw, dict):
        raise fail("top level", f"expected an object with a 'data' field, got {type(raw).__name__}")
    articles = get(raw, "data", list, "top level")
    examples: list[SquadExample] = []
    seen: dict[str, str] = {}
    has_impossible_key = False
    for a_i, article in enumerate(articles):
        a_where = f"data[{a_i}]"
        paragraphs = get(article, "paragraphs", list, a_where)
        title = article.get("title", "")
        if not isinstance(title, str):
            raise fail(f"{a_where}.title", f"expected str, got {type(title).__name__}")
        for p_i, paragraph in enumerate(paragraphs):
            p_where = f"{a_where}.paragraphs[{p_i}]"
            context = get(paragraph, "context", str, p_where)
            for q_i, qa in enumerate(get(paragraph, "qas", list, p_where)):
                q_where = f"{p_where}.qas[{q_i}]"
                qid = get(qa, "id", str, q_where)
                if qid in seen:
                    raise fail(f"{q_where}.id", f"duplicate question id {qid!r} (first at {seen[qid]})")
                seen[qid] = q_where
                question = get(qa, "question", str, q_where)
                texts: list[str] = []
                starts: list[int] = []
                for n_i, answer in enumerate(get(qa, "answers", list, q_where)):
                    n_where = f"{q_where}.answers[{n_i}]"
                    texts.append(get(answer, "text", str, n_where))
                    starts.append(get(answer, "answer_start", int, n_where))
                if "is_impossible" in qa:
                    has_impossible_key = True
                    impossible = qa["is_impossible"]
                    if not isinstance(impossible, bool):
                        raise fail(f"{q_where}.is_impossible", f"expected bool, got {type(impossible).__name__}")
                else:
                    impossible = not texts
                examples.append(SquadExample(qid, title, question, context, texts, starts, impossible))
    version = _detect_version(raw.get("version"), has_impossible_key)
    return SquadDataset(version=version, examples=examples)


def _detect_version(field: Any, has_impossible_key: bool) -> str:
    """Version from the file's "version" ("1.1", "v2.0", ...), else v2.0 iff any is_impossible key."""
    if isinstance(field, str):
        major = field.strip().lower().lstrip("v").split(".")[0]
        if major == "1":
            return V1
        if major == "2":
            return V2
    return V2 if has_impossible_key else V1


def _check_version(version: str) -> str:
    if version not in (V1, V2):
        raise ValueError(f"unknown SQuAD version {version!r}; expected {V1!r} or {V2!r}")
    return version


# --------------------------------------------------------------------------- dataset-level metrics


def evaluate(
    dataset: SquadDataset,
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """Score ``predictions`` (question id -> answer text, "" = no answer) with the official rules.

    v1.1 returns ``exact``, ``f1``, ``total``; ``na_probs`` / ``na_prob_thresh`` have no meaning
    there and raise ValueError rather than being silently ignored.
    v2.0 returns ``exact``, ``f1``, ``total``, ``HasAns_*`` / ``NoAns_*`` (``exact``, ``f1``,
    ``total``) for the splits that are non-empty, and with ``na_probs`` also ``best_exact``,
    ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh``. A question whose na_prob exceeds
    ``na_prob_thresh`` is scored as a "no answer" prediction; without ``na_probs`` every na_prob is
    0.0, as in the official script. Predictions for ids not in the dataset are ignored.
    """
    version = _check_version(dataset.version)
    _check_str_map(predictions, "predictions", str)
    if version == V1:
        if na_probs is not None or na_prob_thresh != 1.0:
            raise ValueError("na_probs / na_prob_thresh apply to SQuAD v2.0 only; this dataset is v1.1")
        return _evaluate_v1(dataset, predictions)
    if na_probs is not None:
        _check_str_map(na_probs, "na_probs", (int, float))
    return _evaluate_v2(dataset, predictions, na_probs, na_prob_thresh)


def _evaluate_v1(dataset: SquadDataset, predictions: Mapping[str, str]) -> dict[str, float]:
    em_total = 0.0
    f1_total = 0.0
    missing = 0
    for ex in dataset.examples:
        if not ex.answers:
            raise ValueError(f"question {ex.id!r} has no gold answer, which v1.1 scoring cannot handle")
        if ex.id not in predictions:
            missing += 1
            continue
        pred = predictions[ex.id]
        em_total += max(exact_match(pred, g) for g in ex.answers)
        f1_total += max(f1(pred, g, V1) for g in ex.answers)
    _warn_missing(missing, len(dataset.examples))
    total = len(dataset.examples)
    return {"exact": 100.0 * em_total / total, "f1": 100.0 * f1_total / total, "total": total}


def _evaluate_v2(
    dataset: SquadDataset,
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None,
    na_prob_thresh: float,
) -> dict[str, float]:
    has_ans = {ex.id: bool(ex.answers) for ex in dataset.examples}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for ex in dataset.examples:
        if ex.id not in predictions:
            continue
        gold = [g for g in ex.answers if normalize_answer(g)] or [""]
        pred = predictions[ex.id]
        exact_raw[ex.id] = max(exact_match(pred, g) for g in gold)
        f1_raw[ex.id] = max(f1(pred, g, V2) for g in gold)
    _warn_missing(len(has_ans) - len(exact_raw), len(has_ans))

    if na_probs is not None:
        absent = [qid for qid in exact_raw if qid not in na_probs]
        if absent:
            raise ValueError(f"na_probs has no entry for {len(absent)} predicted question(s), e.g. {absent[0]!r}")
    probs = na_probs if na_probs is not None else {}

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        # Above the threshold the prediction counts as "no answer": right iff the question has none.
        return {
            qid: float(not has_ans[qid]) if probs.get(qid, 0.0) > na_prob_thresh else score
            for qid, score in raw.items()
        }

    exact_scores = thresholded(exact_raw)
    f1_scores = thresholded(f1_raw)
    all_ids = list(has_ans)
    out = _mean_scores(exact_scores, f1_scores, all_ids)
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in all_ids if has_ans[qid] is wanted]
        if ids:
            out.update({f"{prefix}_{k}": v for k, v in _mean_scores(exact_scores, f1_scores, ids).items()})
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, thresh = _best_threshold(raw, predictions, na_probs, has_ans)
            out[f"best_{name}"] = best
            out[f"best_{name}_thresh"] = thresh
    return out


def _mean_scores(exact: Mapping[str, float], f1s: Mapping[str, float], ids: list[str]) -> dict[str, float]:
    """100 * mean over ``ids`` (file order); an id without a prediction adds 0."""
    return {
        "exact": 100.0 * _ordered_sum(exact.get(qid, 0) for qid in ids) / len(ids),
        "f1": 100.0 * _ordered_sum(f1s.get(qid, 0) for qid in ids) / len(ids),
        "total": len(ids),
    }


def _best_threshold(
    raw: Mapping[str, float],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """Best score over all na_prob thresholds, and that threshold (the official sweep).

    Start from "every question answered with no answer" (each NoAns question scores 1), then admit the
    predictions one by one in increasing na_prob order (stable: ties keep na_probs' order): an answerable
    question gains its raw score, an unanswerable one loses 1 if the prediction is non-empty. The
    threshold is the na_prob of the question at which the running score was last strictly improved.
    """
    cur = float(sum(1 for qid in raw if not has_ans[qid]))
    best, best_thresh = cur, 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in raw:
            continue
        if has_ans[qid]:
            cur += raw[qid]
        elif predictions[qid]:
            cur += -1
        if cur > best:
            best, best_thresh = cur, float(na_probs[qid])
    return 100.0 * best / len(has_ans), best_thresh


def _ordered_sum(values: Iterable[float]) -> float:
    """Plain left-to-right float sum (what the official scripts' ``sum``/``+=`` computed)."""
    total = 0.0
    for v in values:
        total += v
    return total


def _warn_missing(missing: int, total: int) -> None:
    if missing:
        logger.warning("%d of %d questions have no prediction; they score 0", missing, total)


# --------------------------------------------------------------------------- files


def evaluate_files(
    data_path: str | Path,
    predictions_path: str | Path,
    na_probs_path: str | Path | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """``evaluate`` on files, the way the official command-line scripts are run.

    Errors name the file: FileNotFoundError for a missing one, ValueError for invalid JSON, a
    non-SQuAD data file, predictions that are not a JSON object of str -> str, or na_probs that are not
    an object of str -> number.
    """
    dataset = load_squad(data_path)
    predictions = _read_json(Path(predictions_path), "predictions")
    _check_str_map(predictions, str(predictions_path), str)
    na_probs = None
    if na_probs_path is not None:
        na_probs = _read_json(Path(na_probs_path), "na_probs")
        _check_str_map(na_probs, str(na_probs_path), (int, float))
    return evaluate(dataset, predictions, na_probs, na_prob_thresh)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _check_str_map(obj: Any, source: str, value_type: type | tuple[type, ...]) -> None:
    """Reject anything but a mapping of str -> value_type (bools are not numbers here)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected an object mapping question id to value, got {type(obj).__name__}")
    for key, value in obj.items():
        bad_value = not isinstance(value, value_type) or isinstance(value, bool)
        if not bad_value and isinstance(value, float) and math.isnan(value):
            bad_value = True
        if not isinstance(key, str) or bad_value:
            raise ValueError(f"{source}: entry {key!r}: {value!r} is not a str -> "
                             f"{getattr(value_type, '__name__', 'number')} pair")
