"""The reader shipped in models/ answers SQuAD as well as the README says: a broken checkpoint, tokenizer or
decoder moves these numbers by far more than 2 points."""

import pytest

from corpusqa.models import BUILTIN_READERS, DEFAULT_READER
from corpusqa.reader import load_reader_model
from corpusqa.reader.evaluation import evaluate_reader
from corpusqa.reader.squad_metric import load_squad
from shared_data import SQUAD_DIR

#: EM / F1 on the first 300 questions of dev-v1.1, as the README's table reports them.
README_FIRST_300 = {"exact": 74.0, "f1": 79.63}


def test_the_default_reader_ships_with_the_package():
    folder = BUILTIN_READERS[DEFAULT_READER]
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_shipped_reader_scores_as_reported_on_300_dev_questions():
    metrics = evaluate_reader(load_reader_model(DEFAULT_READER), load_squad(SQUAD_DIR / "dev-v1.1.json"), limit=300, progress=False)
    assert metrics["exact"] == pytest.approx(README_FIRST_300["exact"], abs=2.0)
    assert metrics["f1"] == pytest.approx(README_FIRST_300["f1"], abs=2.0)
