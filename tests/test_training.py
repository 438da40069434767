"""Reader fine-tuning: span labels, no-answer negatives, and short offline training runs on a tiny model."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from shared_data import SAMPLE_DIR
from stopping import StopAfter
from tiny_models import build_tiny_model
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertModel

from corpusqa.reader.squad_metric import SquadExample, load_squad
from corpusqa.reader.checkpoint import latest_checkpoint, read_curve
from corpusqa.reader.model import READER_SETTINGS_FILE
from corpusqa.reader.shipping import export_half
from corpusqa.reader.training import (
    StopControl,
    TrainConfig,
    collate,
    config_to_json,
    length_grouped_batches,
    make_features,
    resume_config,
    train,
)
from corpusqa.reader.training_data import TrainExample, article_paragraphs, make_negatives, to_train_examples

#: Training data for the tiny runs: the SQuAD sample committed with the tests (305 questions, 7 articles).
SQUAD_TRAIN = SAMPLE_DIR / "dev-v1.1.json"


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
    out = train(config, progress=False).run_dir
    features = make_features(tokenizer, to_train_examples(records[:200]), 128, 64, 64)
    batch = collate(features, np.arange(64), {"input_ids": tokenizer.pad_token_id})
    assert _batch_loss(out, batch) < 0.8 * _batch_loss(tiny_model, batch)
    losses = json.loads((out / "training_args.json").read_text())["epoch_losses"]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("users, expected", [(None, "32"), ("2048", "2048")])
def test_training_on_the_cpu_caps_onednn_s_kernel_cache_unless_the_user_set_it(tiny_model, tmp_path, monkeypatch,
                                                                               users, expected):
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", users or "unset below, restored after the test")
    if users is None:
        monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    train(_config(tiny_model, tmp_path / "run", max_steps=1, device="cpu"), progress=False)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == expected


def test_output_is_a_standard_qa_folder_even_from_a_plain_encoder(tiny_model, tmp_path):
    encoder = tmp_path / "encoder"  # no QA head: training must add one
    BertModel.from_pretrained(tiny_model).save_pretrained(encoder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(encoder)
    out = train(_config(encoder, tmp_path / "run", epochs=2, limit=60, negatives=0.5), progress=False).run_dir

    model = AutoModelForQuestionAnswering.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.architectures == ["BertForQuestionAnswering"]
    assert (out / "model.safetensors").exists() and tok.is_fast
    assert (out / "epoch-1" / "model.safetensors").exists()
    assert (out / "epoch-2" / "config.json").exists()
    summary = json.loads((out / "training_args.json").read_text())
    assert summary["config"]["limit"] == 60 and summary["num_examples"] > 60  # the negatives were added
    assert summary["num_features"] >= summary["num_examples"]
    assert summary["train_seconds"] > 0 and len(summary["epoch_losses"]) == 2


def test_an_exported_reader_is_fp16_and_records_every_training_phase(tiny_model, tmp_path):
    gold = train(_config(tiny_model, tmp_path / "gold", limit=40), progress=False).run_dir
    corpus = train(_config(gold, tmp_path / "corpus", limit=20, learning_rate=1e-4), progress=False).run_dir
    (corpus / READER_SETTINGS_FILE).write_text(json.dumps({"corpus": {"hybrid": {"no_answer_threshold": -3.0}}}))

    shipped = export_half(corpus, tmp_path / "shipped")
    weights = load_file(shipped / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float16}
    assert json.loads((shipped / READER_SETTINGS_FILE).read_text())["corpus"]["hybrid"]["no_answer_threshold"] == -3.0
    record = json.loads((shipped / "training_args.json").read_text())
    assert record["config"]["limit"] == 20
    assert [phase["config"]["limit"] for phase in record["earlier_phases"]] == [40]
    assert "earlier_phases" not in json.loads((export_half(gold, tmp_path / "g16") / "training_args.json").read_text())


def test_same_seed_gives_identical_weights(tiny_model, tmp_path):
    def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
        config = _config(tiny_model, tmp_path / name, limit=40, batch_size=8, gradient_accumulation=2, seed=seed)
        return load_file(train(config, progress=False).run_dir / "model.safetensors")

    first, second, other = weights("a", 1), weights("b", 1), weights("c", 2)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_max_steps_stops_the_run_there(tiny_model, tmp_path):
    out = train(_config(tiny_model, tmp_path / "run", epochs=3, limit=100, batch_size=8, max_steps=5), progress=False).run_dir
    summary = json.loads((out / "training_args.json").read_text())
    assert summary["optimizer_steps"] == 5 and len(summary["epoch_losses"]) == 1
    assert (out / "model.safetensors").exists()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("stops", [[3], [8], [2, 9, 13]], ids=["mid-epoch", "at-epoch-end", "three-times"])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tiny_model, tmp_path, stops):
    # 8 steps an epoch (batches of 8, accumulation 2, the last step short), 2 epochs, dropout on, negatives mixed in
    settings = dict(limit=50, batch_size=8, gradient_accumulation=2, epochs=2, negatives=0.3, seed=3)
    whole = train(_config(tiny_model, tmp_path / "whole", **settings), progress=False)
    assert whole.finished and whole.total_steps == 16

    config = _config(tiny_model, tmp_path / "pieces", **settings)
    outcome = train(config, progress=False, stop=StopAfter(stops[0]))
    for done, step in zip(stops, stops[1:] + [None]):
        assert not outcome.finished and outcome.global_step == done
        outcome = train(config, progress=False, resume=True, stop=StopAfter(step) if step else None)
    assert outcome.finished and outcome.global_step == 16

    expected, got = _weights(whole.run_dir), _weights(outcome.run_dir)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    summaries = [json.loads((r / "training_args.json").read_text()) for r in (whole.run_dir, outcome.run_dir)]
    assert summaries[0]["epoch_losses"] == summaries[1]["epoch_losses"]
    assert not list(outcome.run_dir.glob("checkpoint-*"))  # a finished run keeps no checkpoint


def test_a_stop_leaves_one_whole_checkpoint_and_the_run_config(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path / "run", limit=50, batch_size=8)
    outcome = train(config, progress=False, stop=StopAfter(2))
    assert not outcome.finished and outcome.stop_reason == "test"
    assert [p.name for p in outcome.run_dir.glob("checkpoint-*")] == ["checkpoint-0000002"]
    assert config_to_json(resume_config(outcome.run_dir)) == config_to_json(config)


def test_a_run_with_a_checkpoint_is_never_restarted_and_resume_needs_one(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path / "run", limit=50, batch_size=8)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train(config, progress=False, resume=True)
    train(config, progress=False, stop=StopAfter(1))
    with pytest.raises(ValueError, match="--resume"):
        train(config, progress=False)
    with pytest.raises(ValueError, match="settings differ"):
        train(replace(config, learning_rate=1.0), progress=False, resume=True)


def test_the_time_budget_stops_at_a_checkpoint(tiny_model, tmp_path):
    outcome = train(_config(tiny_model, tmp_path / "run", limit=50, batch_size=8), progress=False,
                    stop=StopControl(time_budget_minutes=0))
    assert not outcome.finished and outcome.global_step == 1 and outcome.stop_reason == "time budget spent"
    assert latest_checkpoint(outcome.run_dir).name == "checkpoint-0000001"


def test_sigterm_stops_at_a_checkpoint(tiny_model, tmp_path):
    class _SignalAtStep(StopControl):
        def reached(self, global_step: int) -> bool:
            if global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().reached(global_step)

    outcome = train(_config(tiny_model, tmp_path / "run", limit=50, batch_size=8), progress=False,
                    stop=_SignalAtStep())
    assert not outcome.finished and outcome.stop_reason == "SIGTERM" and outcome.global_step == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is only there while training


def test_a_half_written_checkpoint_is_ignored(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path / "run", limit=50, batch_size=8)
    train(config, progress=False, stop=StopAfter(1))
    (config.output_dir / "checkpoint-0000005.tmp").mkdir()  # a process killed while writing step 5
    assert latest_checkpoint(config.output_dir).name == "checkpoint-0000001"
    assert train(config, progress=False, resume=True).finished


def test_the_learning_curve_scores_a_fixed_dev_sample(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path / "run", limit=50, batch_size=8, epochs=2, eval_file=SQUAD_TRAIN,
                     eval_questions=20, eval_every=10)
    train(config, progress=False, stop=StopAfter(7))
    total = train(config, progress=False, resume=True).total_steps
    curve = read_curve(config.output_dir)
    assert total % 10 and [p["step"] for p in curve] == [*range(10, total, 10), total]  # every 10 steps, and at the end
    assert all(0 <= p["f1"] <= 100 and p["train_seconds"] > 0 and p["loss"] > 0 for p in curve)  # the end too
    assert json.loads((config.output_dir / "training_args.json").read_text())["learning_curve"] == curve


@pytest.fixture(scope="module")
def groups_file(records, tmp_path_factory) -> Path:
    from corpusqa.pipelines.hard_negatives import mine_groups
    from corpusqa.reader.squad_metric import SquadDataset
    from corpusqa.reader.training_data import save_groups

    dataset = SquadDataset(version="1.1", examples=records[:400])
    groups, _ = mine_groups(dataset, negatives=2, no_answer_share=0.25, questions=40, seed=0, progress=False)
    path = tmp_path_factory.mktemp("groups") / "groups.json"
    save_groups(path, groups, {})
    return path


def test_shared_normalization_trains_on_groups_and_resumes_bit_for_bit(tiny_model, groups_file, tmp_path):
    settings = dict(objective="shared", batch_size=16, epochs=2, limit=None)
    whole = train(replace(_config(tiny_model, tmp_path / "whole", **settings), train_file=groups_file), progress=False)
    summary = json.loads((whole.run_dir / "training_args.json").read_text())
    assert summary["epoch_losses"][1] < summary["epoch_losses"][0]
    config = replace(_config(tiny_model, tmp_path / "pieces", **settings), train_file=groups_file)
    assert not train(config, progress=False, stop=StopAfter(whole.total_steps // 2 + 1)).finished
    resumed = train(config, progress=False, resume=True)
    expected, got = _weights(whole.run_dir), _weights(resumed.run_dir)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_an_unknown_objective_is_refused(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="objective must be one of window, shared"):
        train(_config(tiny_model, tmp_path / "run", objective="global"), progress=False)


def test_train_takes_several_files_together_and_a_resume_finds_them_all(tmp_path, tiny_models):
    from corpusqa.pipelines.cli import main

    files = []
    for name, count in (("a", 2), ("b", 3)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"version": "1.1", "data": [{"title": name, "paragraphs": [{
            "context": "Paris is the capital of France.",
            "qas": [{"id": f"{name}{n}", "question": f"Which city, {n}?", "answers": [{"text": "Paris", "answer_start": 0}]}
                    for n in range(count)]}]}]}))
        files.append(path)
    output = tmp_path / "run"
    assert main(["train", "--train", str(files[0]), "--train", str(files[1]), "--model", str(tiny_models["bert-uncased"]),
                 "--output", str(output), "--max-steps", "1", "--batch-size", "2", "--device", "cpu"]) == 0  # fmt: skip
    assert resume_config(output).train_file == [str(path) for path in files]
    assert json.loads((output / "training_args.json").read_text())["num_examples"] == 5
