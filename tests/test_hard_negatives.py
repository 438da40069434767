"""Mining training groups: BM25 hard negatives that never hold the answer, questions left without their gold
paragraph, and the groups file that `corpusqa train --objective shared` reads."""

from __future__ import annotations

import json

import pytest

from corpusqa.pipelines.cli import main
from corpusqa.pipelines.hard_negatives import mine_groups
from corpusqa.reader.squad_metric import SquadDataset, SquadExample
from corpusqa.reader.training_data import load_groups, load_training_examples, save_groups

RIVERS = [
    ("Rhine", "The Rhine flows from the Swiss Alps to the North Sea and is 1,230 kilometres long.", "1,230 kilometres"),
    ("Danube", "The Danube flows from the Black Forest to the Black Sea through ten countries.", "ten"),
    ("Elbe", "The Elbe rises in the Krkonose mountains and flows into the North Sea near Cuxhaven.", "Cuxhaven"),
    ("Oder", "The Oder flows north into the Baltic Sea and forms part of the German Polish border.", "Baltic Sea"),
    ("Loire", "The Loire is the longest river of France and flows into the Bay of Biscay.", "Bay of Biscay"),
    ("Seine", "The Seine flows through Paris and into the English Channel at Le Havre.", "Le Havre"),
]


def _dataset() -> SquadDataset:
    examples = []
    for number, (name, context, answer) in enumerate(RIVERS):
        question = f"Where does the river {name} flow into the sea?"
        examples.append(SquadExample(f"q{number}", name, question, context, [answer], [context.index(answer)], False))
    # a paragraph that mentions the Rhine's answer text must never be a negative for the Rhine's question
    trap = "Many rivers reach the North Sea; the Rhine, 1,230 kilometres long, is one of them."
    examples.append(SquadExample("q-trap", "Rivers", "Which rivers reach the North Sea?", trap, ["Rhine"], [trap.index("Rhine")], False))
    return SquadDataset(version="1.1", examples=examples)


def test_negatives_are_retrieved_passages_without_a_gold_answer():
    dataset = _dataset()
    groups, counts = mine_groups(dataset, negatives=2, no_answer_share=0.0, progress=False)
    assert counts["questions"] == len(groups) == len(dataset.examples)
    by_id = {e.id: e for e in dataset.examples}
    for group in groups:
        example = by_id[group.id]
        gold, *negatives = group.passages
        assert gold.context == example.context and gold.context[gold.answer_start:].startswith(gold.answer_text)
        assert 1 <= len(negatives) <= 2
        for negative in negatives:
            assert negative.answer_start is None and negative.context != example.context
            assert not any(a.lower() in negative.context.lower() for a in example.answers)
    rhine = next(g for g in groups if g.id == "q0")
    assert all("1,230" not in p.context for p in rhine.passages[1:]), "the trap holds the answer"
    assert any("North Sea" in p.context for p in rhine.passages[1:]), "negatives share the question's words"


def test_a_share_of_questions_loses_its_gold_paragraph():
    groups, counts = mine_groups(_dataset(), negatives=2, no_answer_share=1.0, progress=False)
    assert counts["without_answer"] == len(groups) > 0
    assert all(p.answer_start is None for g in groups for p in g.passages)
    some, _ = mine_groups(_dataset(), negatives=2, no_answer_share=0.5, questions=5, seed=3, progress=False)
    again, _ = mine_groups(_dataset(), negatives=2, no_answer_share=0.5, questions=5, seed=3, progress=False)
    assert some == again and len(some) == 5


def test_groups_round_trip_and_become_grouped_examples(tmp_path):
    groups, _ = mine_groups(_dataset(), negatives=2, no_answer_share=0.3, seed=1, progress=False)
    path = tmp_path / "groups.json"
    save_groups(path, groups, {"retriever": "bm25"})
    assert load_groups(path) == groups
    examples, group_of = load_training_examples([path], limit=None, negatives=0.0, seed=0)
    assert examples == [p for g in groups for p in g.passages]
    assert group_of == [n for n, g in enumerate(groups) for _ in g.passages]
    with pytest.raises(ValueError, match="brings its own negatives"):
        load_training_examples([path], limit=None, negatives=0.2, seed=0)


def test_several_training_files_are_trained_on_together_each_question_its_own_group(tmp_path):
    groups, _ = mine_groups(_dataset(), negatives=2, no_answer_share=0.3, seed=1, progress=False)
    grouped = tmp_path / "groups.json"
    save_groups(grouped, groups, {"retriever": "bm25"})
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [{
        "context": "Paris is the capital of France.",
        "qas": [{"id": f"q{n}", "question": f"Question {n}?", "answers": [{"text": "Paris", "answer_start": 0}]}
                for n in range(3)]}]}]}))
    examples, group_of = load_training_examples([grouped, squad], limit=None, negatives=0.0, seed=0)
    assert examples[: -3] == [p for g in groups for p in g.passages]
    assert group_of == [n for n, g in enumerate(groups) for _ in g.passages] + [len(groups) + n for n in range(3)]
    _, limited = load_training_examples([grouped, squad], limit=len(groups) + 1, negatives=0.0, seed=0)
    assert max(limited) == len(groups), "the limit counts questions across the files"


def test_a_malformed_groups_file_is_refused_naming_the_group(tmp_path):
    groups, _ = mine_groups(_dataset(), negatives=1, no_answer_share=0.0, progress=False)
    path = tmp_path / "groups.json"
    save_groups(path, groups, {})
    document = json.loads(path.read_text())
    document["groups"][2]["passages"][0]["answer_start"] += 3
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"group 2 \(q2\): answer_text is not at answer_start"):
        load_groups(path)
    del document["groups"][1]["question"]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="group 1"):
        load_groups(path)


def test_the_cli_writes_a_groups_file(tmp_path, capsys):
    squad = tmp_path / "train.json"
    data = [{"title": e.title, "paragraphs": [{"context": e.context, "qas": [
        {"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}]}
        for e in _dataset().examples]
    squad.write_text(json.dumps({"version": "1.1", "data": data}))
    out = tmp_path / "groups.json"
    assert main(["mine-negatives", "--train", str(squad), "--output", str(out), "--negatives", "2", "--quiet"]) == 0
    assert "7 questions" in capsys.readouterr().out
    assert len(load_groups(out)) == 7
