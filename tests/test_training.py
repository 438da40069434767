"""Reader fine-tuning: span labels, no-answer negatives, and short offline training runs on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_models import build_tiny_model
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertModel

from corpusqa.reader.squad_metric import SquadExample, load_squad
from corpusqa.reader.training import (
    TrainConfig,
    TrainExample,
    article_paragraphs,
    collate,
    length_grouped_batches,
    make_features,
    make_negatives,
    to_train_examples,
    train,
)

SQUAD_TRAIN = Path("/work/shared/squad/train-v1.1.json")
pytestmark = pytest.mark.skipif(not SQUAD_TRAIN.exists(), reason="SQuAD train-v1.1.json not available")


@pytest.fixture(scope="module")
def records() -> list[SquadExample]:
    return load_squad(SQUAD_TRAIN).examples


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model("bert-uncased", tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def _config(base: Path, out: Path, **overrides) -> TrainConfig:
    """A run small enough for a unit test; the learning rate is high because the tiny model starts random."""
    settings = dict(
        max_seq_length=128, doc_stride=64, batch_size=16, epochs=1, learning_rate=1e-3, limit=200, device="cpu"
    )
    return TrainConfig(train_file=SQUAD_TRAIN, base_model=base, output_dir=out, **(settings | overrides))


@pytest.mark.parametrize("arch", ["bert-uncased", "roberta"])
def test_labelled_tokens_cover_exactly_the_answer(arch, records, tmp_path):
    tok = AutoTokenizer.from_pretrained(build_tiny_model(arch, tmp_path))
    examples = to_train_examples(records[:100])
    features = make_features(tok, examples, max_seq_length=128, doc_stride=48, max_question_length=64)
    # The same windows, tokenised independently, give the character offsets to check the labels against.
    reference = tok(
        [e.question for e in examples], [e.context for e in examples], truncation="only_second", max_length=128,
        stride=48, return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    assert len(features) == len(reference["input_ids"]) > len(examples)  # long paragraphs are split
    answered, exact = set(), 0
    for i, (start, end) in enumerate(zip(features.start_positions, features.end_positions)):
        assert features.window(i).tolist() == reference["input_ids"][i]
        if start == 0:
            assert end == 0
            continue
        example = examples[features.example_index[i]]
        offsets = reference["offset_mapping"][i]
        first, last = example.answer_start, example.answer_start + len(example.answer_text)
        # The smallest token span holding the answer: exactly the answer text unless the answer starts or ends
        # inside a token (train-v1.1 has a few such offsets, e.g. "8th" found inside "18th").
        assert offsets[start][0] <= first < offsets[start][1] and offsets[end][0] < last <= offsets[end][1]
        exact += example.context[offsets[start][0] : offsets[end][1]] == example.answer_text
        answered.add(int(features.example_index[i]))
    assert len(answered) == len(examples)  # every answer lies whole in at least one window
    assert exact >= 0.95 * len(answered)


def test_windows_without_the_answer_are_labelled_cls(tokenizer):
    filler = " ".join(f"Sentence number {i} talks about nothing in particular." for i in range(40))
    context = f"{filler} The treasure is buried in Zanzibar. {filler}"
    example = TrainExample("Where is the treasure buried?", context, context.index("Zanzibar"), "Zanzibar")
    features = make_features(tokenizer, [example], max_seq_length=48, doc_stride=16, max_question_length=64)
    labels = list(zip(features.start_positions.tolist(), features.end_positions.tolist()))
    assert len(labels) > 10
    assert 0 < sum(label != (0, 0) for label in labels) <= 3  # only the few windows that hold the answer
    for i, (start, end) in enumerate(labels):
        if (start, end) != (0, 0):
            assert tokenizer.decode(features.window(i)[start : end + 1]) == "zanzibar"


def test_unanswerable_question_is_labelled_cls(tokenizer):
    record = SquadExample("q1", "T", "Who won?", "Nobody knows who won the race.", [], [], True)
    features = make_features(tokenizer, to_train_examples([record]), 384, 128, 64)
    assert features.start_positions.tolist() == features.end_positions.tolist() == [0]


def test_long_question_is_truncated(tokenizer):
    context = "The sky is blue because of Rayleigh scattering."
    example = TrainExample("why " * 200 + "is the sky blue?", context, 0, "The")
    features = make_features(tokenizer, [example], max_seq_length=128, doc_stride=32, max_question_length=10)
    assert len(features) == 1
    question_tokens = int((features.window(0, "token_type_ids") == 0).sum()) - 2  # minus [CLS] and [SEP]
    assert question_tokens == 10


def test_length_grouped_batches_cover_every_window_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(20, 384, size=5000)
    batches = length_grouped_batches(lengths, 32, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
    assert sum(len(b) * lengths[b].max() for b in batches) < 1.05 * lengths.sum()
    widths = [int(lengths[b].max()) for b in batches]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)  # batch order stays random
    again = length_grouped_batches(lengths, 32, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_negatives_come_from_the_same_article_and_never_hold_the_answer(records, tokenizer):
    questions = records[:300]
    paragraphs = article_paragraphs(records)
    negatives = make_negatives(questions, paragraphs, fraction=1.0, seed=7)
    assert len(negatives) >= 0.9 * len(questions)
    assert negatives == make_negatives(questions, paragraphs, fraction=1.0, seed=7)
    by_question = {r.question: r for r in questions}
    for negative in negatives:
        record = by_question[negative.question]
        assert negative.answer_start is None
        assert negative.context != record.context and negative.context in paragraphs[record.title]
        assert not any(a.lower() in negative.context.lower() for a in record.answers)

    positives = to_train_examples(questions)
    plain = make_features(tokenizer, positives, 384, 128, 64)
    mixed = make_features(tokenizer, positives + negatives, 384, 128, 64)
    assert int((mixed.start_positions == 0).sum()) >= int((plain.start_positions == 0).sum()) + len(negatives)


def _batch_loss(model_dir: Path, batch: dict[str, torch.Tensor]) -> float:
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(**batch).loss.item()


def test_training_decreases_the_loss(tiny_model, tokenizer, records, tmp_path):
    config = _config(tiny_model, tmp_path / "run", epochs=3)
    out = train(config, progress=False)
    features = make_features(tokenizer, to_train_examples(records[:200]), 128, 64, 64)
    batch = collate(features, np.arange(64), {"input_ids": tokenizer.pad_token_id})
    assert _batch_loss(out, batch) < 0.8 * _batch_loss(tiny_model, batch)
    losses = json.loads((out / "training_args.json").read_text())["epoch_losses"]
    assert losses[-1] < losses[0]


def test_output_is_a_standard_qa_folder_even_from_a_plain_encoder(tiny_model, tmp_path):
    encoder = tmp_path / "encoder"  # no QA head: training must add one
    BertModel.from_pretrained(tiny_model).save_pretrained(encoder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(encoder)
    out = train(_config(encoder, tmp_path / "run", epochs=2, limit=60, negatives=0.5), progress=False)

    model = AutoModelForQuestionAnswering.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.architectures == ["BertForQuestionAnswering"]
    assert (out / "model.safetensors").exists() and tok.is_fast
    assert (out / "checkpoint-epoch-1" / "model.safetensors").exists()
    assert (out / "checkpoint-epoch-2" / "config.json").exists()
    summary = json.loads((out / "training_args.json").read_text())
    assert summary["config"]["limit"] == 60 and summary["num_examples"] > 60  # the negatives were added
    assert summary["num_features"] >= summary["num_examples"]
    assert summary["wall_time_s"] > 0 and len(summary["epoch_losses"]) == 2


def test_same_seed_gives_identical_weights(tiny_model, tmp_path):
    def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
        config = _config(tiny_model, tmp_path / name, limit=40, batch_size=8, gradient_accumulation=2, seed=seed)
        return load_file(train(config, progress=False) / "model.safetensors")

    first, second, other = weights("a", 1), weights("b", 1), weights("c", 2)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_max_steps_stops_the_run_there(tiny_model, tmp_path):
    out = train(_config(tiny_model, tmp_path / "run", epochs=3, limit=100, batch_size=8, max_steps=5), progress=False)
    summary = json.loads((out / "training_args.json").read_text())
    assert summary["optimizer_steps"] == 5 and len(summary["epoch_losses"]) == 1
    assert (out / "model.safetensors").exists()
