"""Tuning over a corpus: the retrieval weight and no-answer threshold chosen from readings, stored with the model,
and used by the query pipelines of the retriever they were tuned for."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from haystack import Document

from corpusqa.pipelines.cli import main
from corpusqa.pipelines.corpus_tuning import Reading, em_drop_bound, sweep
from corpusqa.pipelines.query import load_query_pipeline
from corpusqa.reader import load_reader_model
from corpusqa.reader.core import (
    Candidate,
    no_answer_threshold,
    rank,
    relative_retrieval_scores,
    retrieval_weight,
    threshold_source,
)
from corpusqa.reader.model import READER_SETTINGS_FILE, CorpusSettings
from corpusqa.reader.options import ReadOptions


def _reading(answerable: bool, spans: list[tuple[float, float, float, str]], gold: str = "gold") -> Reading:
    return Reading([gold], answerable, spans)


def _readings() -> list[Reading]:
    """20 answerable questions: in 8 the gold span trails a distractor by 1 logit but its passage retrieves far
    better; 10 unanswerable ones with a null logit that beats their best span by 0 to 9."""
    readings = []
    for i in range(20):
        if i < 8:
            spans = [(5.0, 0.0, 1.0, "distractor"), (4.0, 0.0, 3.0, "gold")]
        else:
            spans = [(6.0 + i % 3, 0.0, 2.0, "gold"), (2.0, 0.0, 2.0, "other")]
        readings.append(_reading(True, spans))
    for i in range(10):
        readings.append(_reading(False, [(1.0, 1.0 + i, 2.0, "anything")]))
    return readings


def test_the_retrieval_weight_is_chosen_by_answerable_em():
    result = sweep(_readings())
    em = dict(result.weights)
    assert em[0.0] == pytest.approx(60.0)  # the 8 distractor questions are lost without the weight
    assert result.settings.retrieval_weight > 0 and max(em.values()) == pytest.approx(100.0)
    assert result.evidence["em_never_abstaining"] == pytest.approx(100.0)


def test_the_weight_grid_grows_while_its_largest_weight_is_the_best():
    """Gold spans 1.5 to 24 logits behind a distractor, in passages that retrieve better: each needs a larger weight,
    the largest beyond the base grid."""
    readings = [_reading(True, [(10.0 + d, 0.0, 0.0, "distractor"), (10.0, 0.0, 1.0, "gold")]) for d in (1.5, 3, 6, 12, 24)]
    result = sweep(readings, grid=(0.0, 1.0))
    weights = [w for w, _ in result.weights]
    chosen = weights.index(result.settings.retrieval_weight)
    assert result.evidence["em_never_abstaining"] == pytest.approx(100.0)
    assert all(em < 100.0 for _, em in result.weights[:chosen]), "the smallest weight that wins all is chosen"
    assert chosen >= 2 and len(weights) == chosen + 2, "the grid grew past (0, 1) and stopped one step after the best"


def test_the_threshold_declines_most_while_losing_at_most_the_allowed_em():
    readings = _readings()
    result = sweep(readings, max_em_drop=2.0)
    weight, threshold = result.settings.retrieval_weight, result.settings.no_answer_threshold

    def outcome(t: float) -> tuple[float, float]:
        em, declined = [], []
        for r in readings:
            logit, null, score, text = max(r.candidates, key=lambda c: c[0] + weight * c[2])
            margin = null - (logit + weight * score)
            (em if r.answerable else declined).append((text == "gold" and margin <= t) if r.answerable else margin > t)
        return 100 * sum(em) / len(em), 100 * sum(declined) / len(declined)

    em, declined = outcome(threshold)
    assert em >= 100.0 - 2.0 and declined == result.evidence["unanswerable_declined"] > 50
    for lower in (threshold - 0.5, threshold - 1e-6):
        assert outcome(lower)[0] < 98.0 or outcome(lower)[1] <= declined, "no lower threshold is allowed and better"


def test_never_abstaining_is_chosen_when_every_abstention_costs_too_much():
    readings = [_reading(True, [(1.0, 5.0 + i, 0.0, "gold")]) for i in range(5)] + [_reading(False, [(1.0, 0.0, 0.0, "x")])]
    result = sweep(readings, max_em_drop=0.0)
    assert result.evidence["em"] == pytest.approx(100.0)
    assert all(null - logit <= result.settings.no_answer_threshold for r in readings[:5] for logit, null, _, _ in r.candidates)


def _graded_readings(answerable: int) -> list[Reading]:
    """Answerable questions answered right, each with its own margin (0, -1, -2, ...), and as many unanswerable
    ones with margins between: the lower the threshold, the more of both are declined."""
    readings = [_reading(True, [(float(i), 0.0, 0.0, "gold")]) for i in range(answerable)]
    return readings + [_reading(False, [(i + 0.5, 0.0, 0.0, "x")]) for i in range(answerable)]


def test_the_drop_bound_is_clopper_pearson_and_the_sample_share_at_confidence_zero():
    assert em_drop_bound(0, 500, 0.9) == pytest.approx(100 * (1 - 0.1 ** (1 / 500)))
    assert em_drop_bound(10, 500, 0.0) == pytest.approx(2.0)
    bounds = [em_drop_bound(k, 500, 0.9) for k in range(20)]
    assert all(a < b for a, b in zip(bounds, bounds[1:])) and all(b > 100 * k / 500 for k, b in enumerate(bounds))
    assert em_drop_bound(5, 500, 0.9) <= 2.0 < em_drop_bound(6, 500, 0.9)
    assert em_drop_bound(10, 2000, 0.9) < em_drop_bound(5, 500, 0.9), "more questions, a tighter bound"


def test_the_threshold_holds_the_drop_on_new_questions_not_on_the_sample():
    readings = _graded_readings(500)
    sampled = sweep(readings, max_em_drop=2.0, confidence=0.0)
    bounded = sweep(readings, max_em_drop=2.0, confidence=0.9)
    assert sampled.evidence["em"] == pytest.approx(98.0), "the sample itself may lose 10 of 500"
    assert bounded.evidence["em"] == pytest.approx(99.0), "at 90% confidence only 5 of 500"
    assert bounded.evidence["em_drop_bound"] <= 2.0 and bounded.evidence["confidence"] == 0.9
    assert bounded.settings.no_answer_threshold > sampled.settings.no_answer_threshold
    assert bounded.evidence["unanswerable_declined"] < sampled.evidence["unanswerable_declined"]


def test_abstaining_that_loses_no_right_answer_is_allowed_however_few_the_questions():
    readings = [_reading(True, [(5.0, 0.0, 0.0, "gold")]), _reading(True, [(1.0, 0.0, 0.0, "wrong")]),
                _reading(False, [(1.0, 0.0, 0.0, "x")])]
    result = sweep(readings, max_em_drop=2.0, confidence=0.9)
    assert result.evidence["em"] == pytest.approx(50.0) and result.evidence["unanswerable_declined"] == 100.0


def test_rank_adds_the_weighted_retrieval_score_and_keeps_the_reader_logit():
    strong = Document(id="a", content="Paris is big.", score=0.1)
    relevant = Document(id="b", content="Lyon is old.", score=2.0)
    found = [Candidate(5.0, 0.0, strong, 0, 5), Candidate(4.0, 0.0, relevant, 0, 4)]
    options = ReadOptions(top_k=2, no_answer=False)
    assert [a.data for a in rank("q", found, 0.0, options)] == ["Paris", "Lyon"]
    weighted = rank("q", found, 0.0, options, weight=2.0)  # relative scores: a 0.05, b 1.0
    assert [a.data for a in weighted] == ["Lyon", "Paris"]
    assert weighted[0].meta["answer_logit"] == pytest.approx(6.0) and weighted[0].meta["reader_logit"] == 4.0
    assert weighted[1].meta["answer_logit"] == pytest.approx(5.1)
    overridden = rank("q", found, 0.0, options, weight=2.0, scores={"a": 3.0, "b": 0.0})
    assert [a.data for a in overridden] == ["Paris", "Lyon"], "a retriever's own scores win over the documents'"


def test_relative_retrieval_scores_are_scale_free():
    passages = [Document(id="a", content="x", score=30.0), Document(id="b", content="y", score=15.0),
                Document(id="c", content="z", score=None)]
    assert relative_retrieval_scores(passages) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert relative_retrieval_scores(passages, {"a": 0.2, "b": 0.8, "c": 0.4}) == {"a": 0.25, "b": 1.0, "c": 0.5}
    assert relative_retrieval_scores([Document(id="a", content="x", score=0.0)]) == {"a": 0.0}


def _tuned_copy(tiny_models, tmp_path, settings: dict) -> str:
    folder = tmp_path / "reader"
    shutil.copytree(tiny_models["bert-uncased"], folder)
    (folder / READER_SETTINGS_FILE).write_text(json.dumps({"no_answer_threshold": -9.0, "corpus": settings}))
    return str(folder)


def test_corpus_values_apply_to_the_retriever_they_were_tuned_for(tiny_models, tmp_path):
    folder = _tuned_copy(tiny_models, tmp_path, {"bm25": {"no_answer_threshold": 1.5, "retrieval_weight": 0.25}})
    reader = load_reader_model(folder, device="cpu", dtype="float32")
    assert reader.corpus_settings == {"bm25": CorpusSettings(1.5, 0.25)}
    bm25 = ReadOptions(corpus_retriever="bm25")
    assert (no_answer_threshold(reader, bm25), retrieval_weight(reader, bm25)) == (1.5, 0.25)
    dense = ReadOptions(corpus_retriever="dense")  # never tuned: 0, not the SQuAD 2.0 threshold
    assert (no_answer_threshold(reader, dense), retrieval_weight(reader, dense)) == (0.0, 0.0)
    assert threshold_source(reader, ReadOptions())[0] == -9.0, "read alone keeps the SQuAD 2.0 threshold"
    assert no_answer_threshold(reader, ReadOptions(corpus_retriever="bm25", no_answer_threshold=3.0)) == 3.0
    pipeline = load_query_pipeline("bm25", tmp_path / "store", {"model": folder, "dtype": "float32"})
    assert pipeline.reader.options.corpus_retriever == "bm25"
    assert no_answer_threshold(pipeline.reader.loaded, pipeline.reader.options) == 1.5


def test_a_reader_tuned_only_over_a_corpus_loads_without_a_squad2_threshold(tiny_models, tmp_path):
    folder = tmp_path / "reader"
    shutil.copytree(tiny_models["bert-uncased"], folder)
    (folder / READER_SETTINGS_FILE).write_text(json.dumps({"corpus": {"hybrid": {"no_answer_threshold": -4.0}}}))
    reader = load_reader_model(str(folder), device="cpu", dtype="float32")
    assert reader.no_answer_threshold is None and reader.corpus_settings == {"hybrid": CorpusSettings(-4.0, 0.0)}
    assert threshold_source(reader, ReadOptions())[0] == 0.0, "read alone: the default, no SQuAD 2.0 value"
    assert no_answer_threshold(reader, ReadOptions(corpus_retriever="hybrid")) == -4.0


def test_tune_measures_and_stores_the_values_for_each_retriever(tiny_models, tmp_path, capsys):
    from test_hard_negatives import RIVERS

    data = [{"title": name, "paragraphs": [{"context": context, "qas": [{
        "id": f"q{n}", "question": f"Where does the river {name} flow into the sea?",
        "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}]}
        for n, (name, context, answer) in enumerate(RIVERS)]
    squad = tmp_path / "train.json"
    squad.write_text(json.dumps({"version": "1.1", "data": data}))
    folder = _tuned_copy(tiny_models, tmp_path, {})
    args = ["tune", "--data", str(squad), "--store", str(tmp_path / "store"), "--model", folder,
            "--retriever", "bm25", "--questions", "6", "--passages", "3", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| weight | EM |" in printed and "(chosen)" in printed
    stored = json.loads((tmp_path / "reader" / READER_SETTINGS_FILE).read_text())
    assert stored["no_answer_threshold"] == -9.0, "the SQuAD 2.0 threshold is kept"
    tuned = stored["corpus"]["bm25"]
    assert math.isfinite(tuned["no_answer_threshold"]) and tuned["retrieval_weight"] >= 0
    assert tuned["tuned_on"]["answerable"] == 3 and tuned["tuned_on"]["unanswerable"] == 3
    assert tuned["tuned_on"]["confidence"] == 0.9
    capsys.readouterr()
    assert main([*args, "--confidence", "1"]) == 2
    assert "--confidence" in capsys.readouterr().err


def test_tune_asks_only_the_held_out_questions_over_the_whole_corpus(tiny_models, tmp_path, capsys):
    from test_hard_negatives import RIVERS

    def squad(rivers):
        data = [{"title": name, "paragraphs": [{"context": context, "qas": [{
            "id": f"q-{name}", "question": f"Where does the river {name} flow into the sea?",
            "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}]} for name, context, answer in rivers]
        return {"version": "1.1", "data": data}

    corpus, held, stranger = tmp_path / "train.json", tmp_path / "held.json", tmp_path / "other.json"
    corpus.write_text(json.dumps(squad(RIVERS)))
    held.write_text(json.dumps(squad(RIVERS[:2])))
    stranger.write_text(json.dumps(squad([("Amazon", "The Amazon flows into the Atlantic.", "Atlantic")])))
    folder = _tuned_copy(tiny_models, tmp_path, {})
    args = ["tune", "--data", str(corpus), "--store", str(tmp_path / "store"), "--model", folder,
            "--retriever", "bm25", "--questions", "6", "--passages", "3", "--quiet"]
    assert main([*args, "--questions-from", str(held)]) == 0
    tuned = json.loads((tmp_path / "reader" / READER_SETTINGS_FILE).read_text())["corpus"]["bm25"]["tuned_on"]
    assert tuned["answerable"] + tuned["unanswerable"] == 2 and tuned["questions_from"] == str(held)
    assert tuned["passages"] == 3
    capsys.readouterr()
    assert main([*args, "--questions-from", str(stranger)]) == 2
    error = capsys.readouterr().err
    assert str(stranger) in error and "'Amazon'" in error
