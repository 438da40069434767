"""Making the shipped reader: averaged weights, fp16, and a record of every run it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import build_tiny_model

from corpusqa.reader import load_reader_model
from corpusqa.reader.model import READER_SETTINGS_FILE
from corpusqa.reader.shipping import average_readers, export_half, greedy_soup, training_history


def _record(folder: Path, base: Path | str, limit: int, **extra) -> None:
    """A training record as `corpusqa train` leaves it, reduced to what the history follows."""
    record = {"config": {"base_model": str(base), "limit": limit}, **extra}
    (folder / "training_args.json").write_text(json.dumps(record))


def test_an_average_holds_the_mean_of_each_weight_and_the_first_readers_settings(tmp_path):
    first = build_tiny_model("bert-uncased", tmp_path / "a", seed=1)
    second = build_tiny_model("bert-uncased", tmp_path / "b", seed=2)
    (first / READER_SETTINGS_FILE).write_text(json.dumps({"no_answer_threshold": -2.5}))

    averaged = average_readers([first, second], tmp_path / "avg")

    a, b, mean = (load_file(folder / "model.safetensors") for folder in (first, second, averaged))
    assert mean.keys() == a.keys()
    assert all(torch.allclose(mean[name], (a[name] + b[name]) / 2, atol=1e-7) for name in a)
    assert not torch.equal(mean["qa_outputs.weight"], a["qa_outputs.weight"])
    assert json.loads((averaged / READER_SETTINGS_FILE).read_text()) == {"no_answer_threshold": -2.5}
    reader = load_reader_model(str(averaged), device="cpu", dtype="float32")
    assert reader.tokenizer.is_fast


def test_an_average_records_the_history_of_each_reader_and_keeps_it_when_exported(tmp_path):
    gold = build_tiny_model("bert-uncased", tmp_path / "gold", seed=1)
    corpus = build_tiny_model("bert-uncased", tmp_path / "corpus", seed=2)
    _record(gold, "base-model", limit=40)
    _record(corpus, gold, limit=20)

    shipped = export_half(average_readers([gold, corpus], tmp_path / "avg"), tmp_path / "shipped")

    assert {tensor.dtype for tensor in load_file(shipped / "model.safetensors").values()} == {torch.float16}
    record = json.loads((shipped / "training_args.json").read_text())
    first, second = record["average_of"]
    assert first["config"]["limit"] == 40 and "earlier_phases" not in first
    assert second["config"]["limit"] == 20
    assert [phase["config"]["limit"] for phase in second["earlier_phases"]] == [40]


def test_a_run_continuing_a_shipped_reader_lists_its_phases_oldest_first_without_nesting(tmp_path):
    gold, corpus, shipped, distilled = (tmp_path / name for name in ("gold", "corpus", "shipped", "distilled"))
    for folder in (gold, corpus, shipped, distilled):
        folder.mkdir()
    _record(gold, "base-model", limit=1)
    _record(corpus, gold, limit=2)
    (shipped / "training_args.json").write_text(json.dumps(training_history(corpus)))
    _record(distilled, shipped, limit=3)

    history = training_history(distilled)

    assert history["config"]["limit"] == 3
    assert [phase["config"]["limit"] for phase in history["earlier_phases"]] == [1, 2]
    assert all("earlier_phases" not in phase for phase in history["earlier_phases"])


@pytest.mark.parametrize(
    ("other_arch", "message"),
    [("electra", "electra model"), ("bert-cased", "has shape")],
    ids=["another architecture", "another vocabulary"],
)
def test_readers_that_cannot_be_averaged_are_refused_naming_the_folder(tmp_path, other_arch, message):
    first = build_tiny_model("bert-uncased", tmp_path / "first")
    other = build_tiny_model(other_arch, tmp_path / "other")

    with pytest.raises(ValueError, match=message) as refused:
        average_readers([first, other], tmp_path / "avg")

    assert str(tmp_path / "other") in str(refused.value)
    assert not (tmp_path / "avg").exists()


def test_one_reader_is_not_an_average(tmp_path):
    with pytest.raises(ValueError, match="two or more"):
        average_readers([build_tiny_model("bert-uncased", tmp_path / "only")], tmp_path / "avg")


def test_a_folder_without_weights_is_refused_by_name(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a reader folder") as refused:
        average_readers([build_tiny_model("bert-uncased", tmp_path / "first"), empty], tmp_path / "avg")
    assert str(empty) in str(refused.value)


def _reader_with_bias(folder: Path, value: float) -> Path:
    """A tiny reader whose first QA-head bias is ``value``: the one number the scores below look at."""
    build_tiny_model("bert-uncased", folder, seed=1)
    weights = load_file(folder / "model.safetensors")
    weights["qa_outputs.bias"][0] = value
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _bias(folder: Path) -> float:
    return float(load_file(folder / "model.safetensors")["qa_outputs.bias"][0])


def test_a_greedy_soup_keeps_a_reader_only_where_the_mean_scores_at_least_as_well(tmp_path):
    a, b, c = (_reader_with_bias(tmp_path / name, value) for name, value in (("a", 1.0), ("b", 3.0), ("c", 10.0)))
    scored = []

    def score(folder: Path) -> float:  # best at a bias of 2: a and b alone score -1, their mean 0
        scored.append(folder)
        return -abs(_bias(folder) - 2.0)

    steps = greedy_soup([c, a, b], score, tmp_path / "soup")

    assert [(s.reader, s.alone, s.kept) for s in steps] == [(a, -1.0, True), (b, -1.0, True), (c, -8.0, False)]
    assert steps[1].mean == pytest.approx(0.0, abs=1e-6)  # a and b together
    assert steps[2].mean == pytest.approx(-(14.0 / 3 - 2.0), abs=1e-5)  # c would pull the mean to 4.67
    assert _bias(tmp_path / "soup") == pytest.approx(2.0, abs=1e-6)
    assert len(scored) == 5  # each reader alone, then two trial means
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the trials are cleaned up


def test_a_soup_no_other_reader_improves_is_the_best_reader_alone(tmp_path):
    a, b = _reader_with_bias(tmp_path / "a", 1.0), _reader_with_bias(tmp_path / "b", 5.0)
    steps = greedy_soup([b, a], lambda folder: -abs(_bias(folder) - 1.0), tmp_path / "soup")
    assert [(s.reader, s.kept) for s in steps] == [(a, True), (b, False)]
    assert (tmp_path / "soup" / "model.safetensors").read_bytes() == (a / "model.safetensors").read_bytes()


def test_a_reader_that_leaves_the_soups_score_as_it_is_joins_it(tmp_path):
    a, b = _reader_with_bias(tmp_path / "a", 2.0), _reader_with_bias(tmp_path / "b", 2.0)
    steps = greedy_soup([a, b], lambda folder: -abs(_bias(folder) - 2.0), tmp_path / "soup")
    assert [s.kept for s in steps] == [True, True]
    assert json.loads((tmp_path / "soup" / "training_args.json").read_text())["average_of"]  # a mean, not a copy


def test_readers_that_cannot_be_averaged_are_refused_before_any_is_scored(tmp_path):
    first = build_tiny_model("bert-uncased", tmp_path / "first")
    other = build_tiny_model("roberta", tmp_path / "other")
    scored = []
    with pytest.raises(ValueError, match="other"):
        greedy_soup([first, other], lambda folder: scored.append(folder) or 0.0, tmp_path / "soup")
    assert scored == []
