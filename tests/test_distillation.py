"""Distillation: a teacher's start and end logits carried to a student's tokens by character, and training on
them that resumes exactly and asks the teacher about each window once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from corpusqa.reader import distillation
from corpusqa.reader.distillation import (
    CLS_MARK,
    OFF_PASSAGE,
    Teacher,
    TeacherCache,
    carry_over,
    distillation_loss,
)
from corpusqa.reader.model import ReaderLoadError
from corpusqa.reader.squad_metric import load_squad
from corpusqa.reader.training import TrainConfig, make_features, train
from corpusqa.pipelines.hard_negatives import mine_groups
from corpusqa.reader.training_data import load_training_examples, save_groups, to_train_examples
from safetensors.torch import load_file
from shared_data import SAMPLE_DIR
from stopping import StopAfter
from tiny_models import build_tiny_model
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertModel

SQUAD_TRAIN = SAMPLE_DIR / "dev-v1.1.json"


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return build_tiny_model("bert-uncased", tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def bpe_teacher(tmp_path_factory) -> Path:
    return build_tiny_model("roberta", tmp_path_factory.mktemp("teacher"), seed=1)


@pytest.fixture(scope="module")
def examples():
    return to_train_examples(load_squad(SQUAD_TRAIN).examples[:12])


def _rows(*pairs):
    return np.asarray(pairs, dtype=np.int32)


def test_each_student_token_takes_the_logits_of_the_teacher_token_holding_its_characters():
    # passage "New York City": the student cuts "new|york|city", the teacher "new york|city" (read from char 0)
    student = _rows((CLS_MARK, CLS_MARK), (OFF_PASSAGE, OFF_PASSAGE), (0, 3), (4, 8), (9, 13), (OFF_PASSAGE, OFF_PASSAGE))
    teacher = _rows((0, 0), (0, 8), (9, 13), (0, 0))
    on_passage = np.array([False, True, True, False])
    t_start, t_end = np.array([5.0, 1.0, 2.0, 9.0]), np.array([6.0, 3.0, 4.0, 9.0])
    start, end = carry_over(student, teacher, on_passage, 0, t_start, t_end, shift=0)
    assert start.tolist() == [5.0, -np.inf, 1.0, 1.0, 2.0, -np.inf]
    assert end.tolist() == [6.0, -np.inf, 3.0, 3.0, 4.0, -np.inf]


def test_a_teacher_reading_from_a_later_character_is_shifted_and_unread_text_takes_no_part():
    student = _rows((CLS_MARK, CLS_MARK), (10, 13), (14, 18), (19, 23))
    teacher = _rows((0, 0), (0, 3), (4, 8))  # read passage[10:], cut before "city"
    start, end = carry_over(student, teacher, np.array([False, True, True]), 0,
                            np.array([0.0, 1.0, 2.0]), np.array([0.0, 3.0, 4.0]), shift=10)
    assert start.tolist() == [0.0, 1.0, 2.0, -np.inf] and end.tolist() == [0.0, 3.0, 4.0, -np.inf]


def test_a_teacher_sharing_the_students_tokenizer_gives_its_own_logits_on_passage_and_cls(student, examples):
    tokenizer = AutoTokenizer.from_pretrained(student)
    features = make_features(tokenizer, examples, 384, 128, 64, with_offsets=True)
    teacher = Teacher(student, torch.device("cpu"), None)
    counts = np.bincount(features.example_index)
    windows = [w for w in range(len(features)) if counts[features.example_index[w]] == 1][:6]  # whole passages
    assert len(windows) == 6
    read = teacher.read(
        [examples[features.example_index[w]].question.lstrip() for w in windows],
        [examples[features.example_index[w]].context for w in windows],
        [features.offsets[features.bounds[w] : features.bounds[w + 1]] for w in windows],
    )
    model = AutoModelForQuestionAnswering.from_pretrained(student).eval()
    for w, (start, end) in zip(windows, read):
        ids = torch.from_numpy(features.window(w).astype(np.int64))[None]
        types = torch.from_numpy(features.window(w, "token_type_ids").astype(np.int64))[None]
        with torch.no_grad():
            own = model(input_ids=ids, token_type_ids=types)
        offsets = features.offsets[features.bounds[w] : features.bounds[w + 1]]
        kept = (offsets[:, 0] >= 0) | (offsets[:, 0] == CLS_MARK)
        assert np.isfinite(start[kept]).all() and np.isneginf(start[~kept]).all()
        np.testing.assert_allclose(start[kept], own.start_logits[0].numpy()[kept], atol=1e-4)
        np.testing.assert_allclose(end[kept], own.end_logits[0].numpy()[kept], atol=1e-4)


def test_a_teacher_reading_many_windows_at_once_gives_each_the_logits_it_gives_it_alone(student, bpe_teacher, examples):
    """More windows than one of the teacher's batches, of mixed lengths: sorted, batched and padded per batch."""
    features = make_features(AutoTokenizer.from_pretrained(student), examples, 128, 64, 64, with_offsets=True)
    windows = list(range(20))
    args = [
        [examples[features.example_index[w]].question for w in windows],
        [examples[features.example_index[w]].context for w in windows],
        [features.offsets[features.bounds[w] : features.bounds[w + 1]] for w in windows],
    ]
    assert len({len(offsets) for offsets in args[2]}) > 1, "windows of mixed lengths"
    teacher = Teacher(bpe_teacher, torch.device("cpu"), None)
    together = teacher.read(*args)
    for i, (start, end) in enumerate(together):
        [(alone_start, alone_end)] = teacher.read(*[[column[i]] for column in args])
        np.testing.assert_allclose(start, alone_start, atol=1e-5)
        np.testing.assert_allclose(end, alone_end, atol=1e-5)


def test_a_teacher_with_another_tokenizer_covers_every_passage_token(student, bpe_teacher, examples):
    features = make_features(AutoTokenizer.from_pretrained(student), examples, 128, 64, 64, with_offsets=True)
    read = Teacher(bpe_teacher, torch.device("cpu"), None).read(
        [examples[features.example_index[w]].question for w in range(4)],
        [examples[features.example_index[w]].context for w in range(4)],
        [features.offsets[features.bounds[w] : features.bounds[w + 1]] for w in range(4)],
    )
    for w, (start, end) in enumerate(read):
        offsets = features.offsets[features.bounds[w] : features.bounds[w + 1]]
        on_passage = offsets[:, 0] >= 0
        assert np.isfinite(start[on_passage]).all() and np.isfinite(end[on_passage]).all()
        assert np.isneginf(start[offsets[:, 0] == OFF_PASSAGE]).all()


def test_the_distillation_loss_is_zero_at_the_teacher_and_blind_where_the_teacher_has_no_logit():
    teacher = torch.tensor([[2.0, -1.0, 0.5, -np.inf]])
    same = distillation_loss(teacher.clamp(min=-50), teacher.clamp(min=-50), teacher, teacher, 2.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    student = torch.tensor([[0.0, 1.0, 0.0, 3.0]])
    moved = student.clone()
    moved[0, 3] = -7.0  # a position the teacher has no logit for
    loss = distillation_loss(student, student, teacher, teacher, 2.0)
    assert loss.item() > 0.1
    assert distillation_loss(moved, moved, teacher, teacher, 2.0).item() == pytest.approx(loss.item())


def test_over_a_question_the_distillation_loss_sees_how_windows_compare_and_per_window_it_does_not():
    teacher = torch.tensor([[1.0, 3.0, 0.0, -np.inf], [2.0, 0.5, -1.0, 1.0], [0.0, 4.0, 1.0, -np.inf]])
    student = torch.tensor([[0.5, 2.0, 1.0, 9.0], [1.0, 1.0, 0.0, 2.0], [1.0, 3.0, 0.0, 0.0]])
    shifted = student.clone()
    shifted[1] += 5.0  # the second window's logits all raised: its passage now outranks the others
    questions = torch.tensor([7, 7, 3])  # windows 0 and 1 are one question's passages, window 2 another's

    def loss(s, groups=None):
        return distillation_loss(s, s, teacher, teacher, 2.0, groups).item()

    assert loss(shifted) == pytest.approx(loss(student), abs=1e-5)  # one softmax per window: blind to the shift
    assert loss(shifted, questions) > loss(student, questions) + 0.5
    at_teacher = teacher.clamp(min=-50)
    assert distillation_loss(at_teacher, at_teacher, teacher, teacher, 2.0, questions).item() == pytest.approx(0.0, abs=1e-6)
    # a question with one window is that window's own softmax; the mean is over questions
    alone = torch.tensor([0, 1, 2])
    assert loss(student, alone) == pytest.approx(loss(student), abs=1e-5)


def test_distilling_over_questions_needs_the_shared_objective(student, bpe_teacher, tmp_path):
    with pytest.raises(ValueError, match="objective 'shared'"):
        train(_config(student, bpe_teacher, tmp_path / "run", distill_softmax="question"), progress=False)
    with pytest.raises(ValueError, match="distill_softmax must be one of window, question"):
        train(_config(student, bpe_teacher, tmp_path / "run", distill_softmax="passage"), progress=False)
    assert not (tmp_path / "run").exists()


def _config(student: Path, teacher: Path | None, out: Path, **overrides) -> TrainConfig:
    settings = dict(train_file=SQUAD_TRAIN, max_seq_length=128, doc_stride=64, batch_size=8, epochs=2,
                    learning_rate=1e-3, limit=40, device="cpu", teacher=teacher and str(teacher), distill_weight=0.7)
    return TrainConfig(base_model=student, output_dir=out, **(settings | overrides))


def test_distilling_resumes_bit_for_bit_and_asks_the_teacher_about_each_window_once(
    student, bpe_teacher, tmp_path, monkeypatch
):
    asked: list[int] = []
    read = Teacher.read
    monkeypatch.setattr(Teacher, "read", lambda self, q, p, o: asked.append(len(q)) or read(self, q, p, o))

    whole = train(_config(student, bpe_teacher, tmp_path / "whole"), progress=False)
    windows = json.loads((whole.run_dir / "training_args.json").read_text())["num_features"]
    assert sum(asked) == windows  # two epochs, one read of each window
    assert not (whole.run_dir / distillation.CACHE_FOLDER).exists()  # a finished run keeps no cache

    asked.clear()
    config = _config(student, bpe_teacher, tmp_path / "pieces")
    first = train(config, progress=False, stop=StopAfter(3))
    assert (first.run_dir / distillation.CACHE_FOLDER / "logits.npz").is_file()
    read_before = sum(asked)
    assert train(config, progress=False, resume=True).finished
    assert sum(asked) == windows and read_before < windows  # the resumed run read only the windows still unread

    expected, got = load_file(whole.run_dir / "model.safetensors"), load_file(tmp_path / "pieces" / "model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_cache_made_for_another_teacher_or_other_windows_is_not_used(tmp_path):
    bounds = np.array([0, 3, 5])
    cache = TeacherCache("teacher-a", bounds)
    cache.put(1, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    cache.save(tmp_path)
    assert TeacherCache.open(tmp_path, "teacher-a", bounds).done.tolist() == [False, True]
    assert TeacherCache.open(tmp_path, "teacher-b", bounds).done.tolist() == [False, False]


def _distance_to_teacher(folder: Path, teacher_folder: Path, examples) -> float:
    """The distillation loss of the model in ``folder`` against the teacher, summed over the examples' windows."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    features = make_features(tokenizer, examples, 128, 64, 64, with_offsets=True)
    teacher = Teacher(teacher_folder, torch.device("cpu"), None)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    total = 0.0
    for w in range(len(features)):
        example = examples[features.example_index[w]]
        [(start, end)] = teacher.read([example.question], [example.context],
                                      [features.offsets[features.bounds[w] : features.bounds[w + 1]]])
        ids = torch.from_numpy(features.window(w).astype(np.int64))[None]
        with torch.no_grad():
            output = model(input_ids=ids)
        t_start = torch.from_numpy(start)[None].float()
        t_end = torch.from_numpy(end)[None].float()
        total += distillation_loss(output.start_logits, output.end_logits, t_start, t_end, 2.0).item()
    return total


def test_the_student_moves_toward_its_teacher(student, bpe_teacher, tmp_path, examples):
    out = train(_config(student, bpe_teacher, tmp_path / "run", distill_weight=1.0, epochs=3), progress=False).run_dir
    assert _distance_to_teacher(out, bpe_teacher, examples[:8]) < 0.7 * _distance_to_teacher(student, bpe_teacher, examples[:8])


@pytest.fixture(scope="module")
def groups_file(tmp_path_factory) -> Path:
    """A corpus phase's training file: sample questions, each with its gold paragraph and BM25 negatives."""
    dataset = load_squad(SQUAD_TRAIN)
    groups, _ = mine_groups(dataset, negatives=2, no_answer_share=0.3, questions=10, seed=0, progress=False)
    path = tmp_path_factory.mktemp("groups") / "groups.json"
    save_groups(path, groups, {"retriever": "bm25"})
    return path


def test_a_corpus_phase_learns_from_the_teacher_window_by_window(student, bpe_teacher, groups_file, tmp_path):
    shared = dict(train_file=groups_file, objective="shared", limit=None)
    out = train(_config(student, bpe_teacher, tmp_path / "run", distill_weight=1.0, epochs=3, **shared),
                progress=False).run_dir
    group_examples, _ = load_training_examples([groups_file], None, 0.0, 0)
    assert len(group_examples) > 10  # negatives too, not only gold paragraphs
    assert _distance_to_teacher(out, bpe_teacher, group_examples) < 0.7 * _distance_to_teacher(
        student, bpe_teacher, group_examples
    )


def test_a_corpus_phase_can_learn_how_the_teacher_ranks_a_questions_passages(student, bpe_teacher, groups_file, tmp_path):
    shared = dict(train_file=groups_file, objective="shared", limit=None, distill_weight=1.0, epochs=3)
    runs = {scope: train(_config(student, bpe_teacher, tmp_path / scope, distill_softmax=scope, **shared),
                         progress=False).run_dir for scope in ("window", "question")}
    group_examples, group_of = load_training_examples([groups_file], None, 0.0, 0)
    before = _question_distance(student, bpe_teacher, group_examples, group_of)
    after = {scope: _question_distance(run, bpe_teacher, group_examples, group_of) for scope, run in runs.items()}
    assert after["question"] < 0.7 * before
    assert after["question"] < after["window"]  # what the per-window softmax cannot teach


def _question_distance(folder: Path, teacher_folder: Path, examples, group_of) -> float:
    """The distillation loss over each question's windows together, of the model in ``folder`` against the teacher."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    features = make_features(tokenizer, examples, 128, 64, 64, with_offsets=True)
    teacher = Teacher(teacher_folder, torch.device("cpu"), None)
    windows = range(len(features))
    read = teacher.read([examples[features.example_index[w]].question for w in windows],
                        [examples[features.example_index[w]].context for w in windows],
                        [features.offsets[features.bounds[w] : features.bounds[w + 1]] for w in windows])
    width = int(features.lengths.max())
    t_start, t_end = (torch.full((len(features), width), float("-inf")) for _ in range(2))
    ids = torch.zeros((len(features), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for w, (start, end) in enumerate(read):
        n = len(start)
        t_start[w, :n], t_end[w, :n] = torch.from_numpy(start), torch.from_numpy(end)
        ids[w, :n], mask[w, :n] = torch.from_numpy(features.window(w).astype(np.int64)), 1
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    with torch.no_grad():
        output = model(input_ids=ids, attention_mask=mask)
    groups = torch.as_tensor(np.asarray(group_of)[features.example_index])
    return distillation_loss(output.start_logits, output.end_logits, t_start, t_end, 2.0, groups).item()


def test_a_teacher_at_weight_zero_leaves_the_shared_objective_as_it_is(student, bpe_teacher, groups_file, tmp_path):
    shared = dict(train_file=groups_file, objective="shared", limit=None, epochs=1)
    taught = train(_config(student, bpe_teacher, tmp_path / "taught", distill_weight=0.0, **shared), progress=False)
    alone = train(_config(student, None, tmp_path / "alone", **shared), progress=False)
    expected, got = load_file(alone.run_dir / "model.safetensors"), load_file(taught.run_dir / "model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_teacher_without_a_trained_qa_head_is_refused_before_training(student, tmp_path):
    encoder = tmp_path / "encoder"  # e.g. the base all-mpnet-base-v2, not yet fine-tuned for QA
    BertModel.from_pretrained(student).save_pretrained(encoder)
    AutoTokenizer.from_pretrained(student).save_pretrained(encoder)
    with pytest.raises(ReaderLoadError, match="no QA head"):
        train(_config(student, encoder, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "run.json").exists()
