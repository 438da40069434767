"""The SQuAD metric must give the official scripts' numbers exactly, and follow each version's rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from corpusqa.reader.squad_metric import (
    SquadDataset,
    evaluate,
    evaluate_files,
    exact_match,
    f1,
    load_squad,
    normalize_answer,
)

from shared_data import SQUAD_DIR  # noqa: E402

# Official leaderboard scores of the prediction files (see ../shared/squad/README.md).
OFFICIAL = [
    ("dev-v1.1.bert-ensemble.json", "dev-v1.1.json",
     {"exact": 86.20624408703878, "f1": 92.19557978351145, "total": 10570}),
    ("dev-v1.1.logistic-regression.json", "dev-v1.1.json",
     {"exact": 40.14191106906339, "f1": 50.98153647324461, "total": 10570}),
    ("dev-v2.0.bert-single.json", "dev-v2.0.json",
     {"exact": 78.74168280973637, "f1": 81.77528052374723, "total": 11873,
      "HasAns_exact": 74.10593792172739, "HasAns_f1": 80.18183293833508, "HasAns_total": 5928,
      "NoAns_exact": 83.36417157275021, "NoAns_f1": 83.36417157275021, "NoAns_total": 5945}),
    ("dev-v2.0.bidaf.json", "dev-v2.0.json",
     {"exact": 65.70369746483618, "f1": 67.87648921451334, "total": 11873,
      "HasAns_exact": 61.42037786774629, "HasAns_f1": 65.77219238257676, "HasAns_total": 5928,
      "NoAns_exact": 69.97476871320437, "NoAns_f1": 69.97476871320437, "NoAns_total": 5945}),
]


@pytest.mark.skipif(not SQUAD_DIR.is_dir(), reason="shared SQuAD data not available")
@pytest.mark.parametrize(("pred_file", "data_file", "expected"), OFFICIAL, ids=[o[0] for o in OFFICIAL])
def test_official_prediction_files_reproduce_leaderboard_scores(pred_file, data_file, expected):
    result = evaluate_files(SQUAD_DIR / data_file, SQUAD_DIR / "predictions" / pred_file)
    assert result == expected  # exact float equality, and no extra keys (no na_probs -> no best_*)


# --------------------------------------------------------------------------- helpers


def _qa(qid: str, answers: list[str], impossible: bool | None = None) -> dict:
    qa = {"id": qid, "question": f"question {qid}?",
          "answers": [{"text": t, "answer_start": 0} for t in answers]}
    if impossible is not None:
        qa["is_impossible"] = impossible
    return qa


def _squad(qas: list[dict], version: str | None) -> dict:
    raw = {"data": [{"title": "T", "paragraphs": [{"context": "some context", "qas": qas}]}]}
    if version is not None:
        raw["version"] = version
    return raw


def _write(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def _load(tmp_path: Path, qas: list[dict], version: str | None) -> SquadDataset:
    return load_squad(_write(tmp_path, "data.json", _squad(qas, version)))


# --------------------------------------------------------------------------- answer level


@pytest.mark.parametrize(("raw", "normalised"), [
    ("The Quick, brown FOX!", "quick brown fox"),             # case, punctuation, leading article
    ("an apple a day", "apple day"),                          # a / an as whole words
    ("theatre anthem", "theatre anthem"),                     # articles inside words stay
    ("  Denver\t\nBroncos  ", "denver broncos"),              # white space collapsed
    ("A.B.C.", "abc"),                                        # punctuation removed before articles
    ("The.", ""),                                             # "The." -> "the" -> ""
])
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_exact_match_and_f1_on_single_answers():
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1
    assert exact_match("Eiffel", "eiffel tower") == 0
    assert f1("red dog", "the big red dog", "1.1") == pytest.approx(0.8, abs=1e-12)  # p=1, r=2/3
    assert f1("dog dog", "dog", "2.0") == pytest.approx(2 / 3, abs=1e-12)  # tokens counted with multiplicity
    assert f1("cat", "dog", "2.0") == 0.0


def test_f1_empty_sides_differ_between_versions():
    assert f1("", "", "2.0") == 1.0       # v2.0: a correct "no answer"
    assert f1("the", "", "2.0") == 1.0    # normalises to no tokens too
    assert f1("", "dog", "2.0") == 0.0
    assert f1("dog", "", "2.0") == 0.0
    assert f1("", "", "1.1") == 0.0       # v1.1: no shared token, no credit
    with pytest.raises(ValueError, match="version"):
        f1("a", "b", "3.0")


# --------------------------------------------------------------------------- dataset level


def test_v1_takes_max_over_gold_answers(tmp_path):
    ds = _load(tmp_path, [_qa("q1", ["Denver Broncos", "Broncos", "the Broncos"]),
                          _qa("q2", ["Denver Broncos", "Carolina Panthers", "the Panthers"])], "1.1")
    assert ds.version == "1.1"
    result = evaluate(ds, {"q1": "broncos", "q2": "Denver"})
    assert result["exact"] == pytest.approx(50.0, abs=1e-12)       # q1 matches its 2nd/3rd gold
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2, abs=1e-12)  # q2: best is 2/3
    assert result["total"] == 2


def test_v1_empty_prediction_scores_zero(tmp_path):
    ds = _load(tmp_path, [_qa("q1", ["Paris"])], "1.1")
    assert evaluate(ds, {"q1": ""}) == {"exact": 0.0, "f1": 0.0, "total": 1}


def test_v2_empty_prediction_right_only_for_unanswerable(tmp_path):
    ds = _load(tmp_path, [_qa("ans", ["Paris"], False), _qa("unans", [], True)], "v2.0")
    assert ds.version == "2.0"
    both_empty = evaluate(ds, {"ans": "", "unans": ""})
    assert both_empty["HasAns_exact"] == 0.0 and both_empty["HasAns_f1"] == 0.0
    assert both_empty["NoAns_exact"] == 100.0 and both_empty["NoAns_f1"] == 100.0
    assert both_empty["exact"] == 50.0
    both_answered = evaluate(ds, {"ans": "paris", "unans": "London"})
    assert both_answered["HasAns_f1"] == 100.0 and both_answered["NoAns_f1"] == 0.0


def test_v2_gold_texts_normalising_to_empty_are_dropped(tmp_path):
    ds = _load(tmp_path, [_qa("q1", ["the", "Paris"], False)], "v2.0")
    assert evaluate(ds, {"q1": ""})["exact"] == 0.0   # only "Paris" is gold
    assert evaluate(ds, {"q1": "Paris"})["exact"] == 100.0


@pytest.mark.parametrize("version", ["1.1", "v2.0"])
def test_missing_predictions_count_as_zero(tmp_path, caplog, version):
    ds = _load(tmp_path, [_qa("q1", ["Paris"]), _qa("q2", ["Rome"])], version)
    with caplog.at_level(logging.WARNING, logger="corpusqa.reader.squad_metric"):
        result = evaluate(ds, {"q1": "Paris"})
    assert (result["exact"], result["f1"], result["total"]) == (50.0, 50.0, 2)
    assert "1 of 2 questions have no prediction" in caplog.text


def test_v2_without_unanswerable_questions_has_no_noans_keys(tmp_path):
    ds = _load(tmp_path, [_qa("q1", ["Paris"], False)], "v2.0")
    assert set(evaluate(ds, {"q1": "Paris"})) == {"exact", "f1", "total",
                                                 "HasAns_exact", "HasAns_f1", "HasAns_total"}


# --------------------------------------------------------------------------- v2.0 thresholds

# q1 right (F1 1), q2 partly right (F1 0.8), q5 wrong; q3 unanswerable but answered, q4 correctly empty.
THRESH_QAS = [_qa("q1", ["Paris"], False), _qa("q2", ["the big red dog"], False),
              _qa("q3", [], True), _qa("q4", [], True), _qa("q5", ["blue"], False)]
THRESH_PREDS = {"q1": "Paris", "q2": "red dog", "q3": "something", "q4": "", "q5": "green"}
THRESH_PROBS = {"q1": 0.1, "q2": 0.4, "q3": 0.5, "q4": 0.9, "q5": 0.6}


def test_v2_best_thresholds_by_hand(tmp_path):
    ds = _load(tmp_path, THRESH_QAS, "v2.0")
    result = evaluate(ds, THRESH_PREDS, THRESH_PROBS)
    # Threshold 1.0 changes nothing: exact (1+0+0+1+0)/5, f1 (1+0.8+0+1+0)/5.
    assert result["exact"] == pytest.approx(40.0, abs=1e-12)
    assert result["f1"] == pytest.approx(56.0, abs=1e-12)
    # Sweep by increasing na_prob, starting from 2 (both NoAns right when everything is "no answer"):
    #   F1:    q1 +1 -> 3 (0.1), q2 +0.8 -> 3.8 (0.4, best), q3 -1 -> 2.8, q5 +0, q4 +0.
    #   exact: q1 +1 -> 3 (0.1, best), q2 +0 -> 3, q3 -1 -> 2, ...
    assert result["best_f1"] == pytest.approx(100 * 3.8 / 5, abs=1e-12)
    assert result["best_f1_thresh"] == 0.4
    assert result["best_exact"] == pytest.approx(60.0, abs=1e-12)
    assert result["best_exact_thresh"] == 0.1
    assert "best_f1" not in evaluate(ds, THRESH_PREDS)  # only computed when na_probs are given


def test_v2_na_prob_thresh_turns_predictions_into_no_answer(tmp_path):
    ds = _load(tmp_path, THRESH_QAS, "v2.0")
    result = evaluate(ds, THRESH_PREDS, THRESH_PROBS, na_prob_thresh=0.45)
    # Above 0.45: q3 (unanswerable) becomes right, q5 (answerable) stays wrong, q4 stays right.
    assert result["exact"] == pytest.approx(60.0, abs=1e-12)
    assert result["f1"] == pytest.approx(100 * 3.8 / 5, abs=1e-12)
    assert result["NoAns_exact"] == 100.0
    assert result["HasAns_f1"] == pytest.approx(100 * 1.8 / 3, abs=1e-12)
    # Strictly greater: q3's na_prob of exactly 0.5 keeps its (wrong) answer at threshold 0.5.
    assert evaluate(ds, THRESH_PREDS, THRESH_PROBS, na_prob_thresh=0.5)["NoAns_exact"] == 50.0
    # Without na_probs every na_prob is 0.0, so a negative threshold makes everything "no answer".
    everything_empty = evaluate(ds, THRESH_PREDS, na_prob_thresh=-1.0)
    assert everything_empty["exact"] == pytest.approx(40.0, abs=1e-12)
    assert everything_empty["HasAns_exact"] == 0.0 and everything_empty["NoAns_exact"] == 100.0


def test_na_probs_are_rejected_where_they_cannot_apply(tmp_path):
    v2 = _load(tmp_path, THRESH_QAS, "v2.0")
    with pytest.raises(ValueError, match="na_probs has no entry"):
        evaluate(v2, THRESH_PREDS, {"q1": 0.1})
    v1 = _load(tmp_path, [_qa("q1", ["Paris"])], "1.1")
    with pytest.raises(ValueError, match="v2.0 only"):
        evaluate(v1, {"q1": "Paris"}, {"q1": 0.5})


# --------------------------------------------------------------------------- loading and files


@pytest.mark.parametrize(("version", "impossible", "expected"), [
    ("1.1", None, "1.1"), ("v2.0", None, "2.0"), ("2.0", None, "2.0"),
    (None, False, "2.0"), (None, None, "1.1"),
])
def test_version_detection(tmp_path, version, impossible, expected):
    assert _load(tmp_path, [_qa("q1", ["x"], impossible)], version).version == expected


def test_load_squad_keeps_fields(tmp_path):
    ds = _load(tmp_path, [_qa("q1", ["Paris", "paris"]), _qa("q2", [], True)], "v2.0")
    ex = ds.examples[0]
    assert (ex.id, ex.title, ex.context, ex.answers, ex.answer_starts, ex.is_impossible) == (
        "q1", "T", "some context", ["Paris", "paris"], [0, 0], False)
    assert ds.examples[1].is_impossible is True


@pytest.mark.parametrize(("raw", "field"), [
    ({"version": "1.1"}, "'data'"),
    ({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}, "'context'"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "?", "answers": []}]}]}]}, "'id'"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "a", "question": "?", "answers": [{"text": "x"}]}]}]}]}, "'answer_start'"),
    (_squad([_qa("q1", ["x"]), _qa("q1", ["y"])], "1.1"), "duplicate question id"),
    ([1, 2], "'data'"),
])
def test_load_squad_errors_name_the_file_and_field(tmp_path, raw, field):
    path = _write(tmp_path, "broken.json", raw)
    with pytest.raises(ValueError) as err:
        load_squad(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_load_squad_missing_file_and_bad_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_squad(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        load_squad(_write(tmp_path, "bad.json", "{not json"))


@pytest.mark.parametrize("preds", [["Paris"], {"q1": 3}, {"q1": None}])
def test_evaluate_files_rejects_bad_predictions(tmp_path, preds):
    data = _write(tmp_path, "data.json", _squad([_qa("q1", ["Paris"])], "1.1"))
    with pytest.raises(ValueError, match="preds.json"):
        evaluate_files(data, _write(tmp_path, "preds.json", preds))


def test_evaluate_files_with_na_probs(tmp_path):
    data = _write(tmp_path, "data.json", _squad(THRESH_QAS, "v2.0"))
    preds = _write(tmp_path, "preds.json", THRESH_PREDS)
    result = evaluate_files(data, preds, _write(tmp_path, "na.json", THRESH_PROBS))
    assert result["best_f1_thresh"] == 0.4
    with pytest.raises(ValueError, match="na.json"):
        evaluate_files(data, preds, _write(tmp_path, "na.json", {"q1": "high"}))
    with pytest.raises(FileNotFoundError, match="missing_preds.json"):
        evaluate_files(data, tmp_path / "missing_preds.json")
