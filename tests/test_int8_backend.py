"""The int8 backend: the same answers as fp32 where the reader is sure, and a cache that is never stale."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
from haystack import Document

from corpusqa.reader import onnx_int8
from corpusqa.reader.backend import OnnxBackend, TorchBackend
from corpusqa.reader.core import _close_calls, read
from corpusqa.reader.model import load_reader_model
from corpusqa.reader.options import ReadOptions
from shared_data import SAMPLE_DIR
from tiny_models import ARCHITECTURES

pytest.importorskip("onnxruntime")

#: A top answer counts as clear when fp32 ranks it this many logits above the next span: ten times what int8
#: moves a tiny model's logits (median 0.001), whose random weights give logits near 0.5 and margins near 0.01.
CLEAR_MARGIN = 0.01


def _sample(questions_per_paragraph: int = 1) -> tuple[list[str], list[list[Document]]]:
    data = json.loads((SAMPLE_DIR / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    questions, passages = [], []
    for article in data:
        documents = [Document(content=p["context"]) for p in article["paragraphs"]]
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"][:questions_per_paragraph]:
                questions.append(qa["question"])
                passages.append(documents)
    return questions, passages


def _clear(answers) -> bool:
    spans = [a for a in answers if a.data is not None]
    if len(spans) < 2:
        return bool(spans)
    return spans[0].meta["answer_logit"] - spans[1].meta["answer_logit"] >= CLEAR_MARGIN


def _top(answers):
    best = next(a for a in answers if a.data is not None)
    return best.document.id, best.document_offset.start, best.document_offset.end


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_gives_fp32s_answers_and_offsets_where_the_margin_is_clear(tiny_models, arch):
    fp32 = load_reader_model(tiny_models[arch], device="cpu", dtype="float32")
    int8 = load_reader_model(tiny_models[arch], device="cpu", dtype="int8")
    assert isinstance(int8.backend, OnnxBackend) and isinstance(fp32.backend, TorchBackend)
    questions, passages = _sample()
    # int8 alone; ONNX Runtime quantizes a batch's activations with one scale, so int8's error depends on which
    # windows share a batch: CLEAR_MARGIN was measured with batches of 8 (at 4, one answer fp32 ranks 0.058 ahead flips)
    options = ReadOptions(top_k=3, no_answer=False, rescore_margin=None, batch_size=8)
    expected, got = read(fp32, questions, passages, options), read(int8, questions, passages, options)
    clear = [(e, g) for e, g in zip(expected, got) if _clear(e)]
    assert len(clear) >= 10, "too few clear answers to compare"
    assert [_top(e) for e, _ in clear] == [_top(g) for _, g in clear]


def test_the_shipped_reader_in_int8_alone_answers_mostly_as_in_fp32():
    fp32 = load_reader_model("models/minilm-squad", device="cpu", dtype="float32")
    int8 = load_reader_model("models/minilm-squad", device="cpu", dtype="int8")
    questions, passages = _sample()
    options = ReadOptions(top_k=1, no_answer=False, rescore_margin=None)
    expected = [a[0].data for a in read(fp32, questions, passages, options)]
    got = [a[0].data for a in read(int8, questions, passages, options)]
    same = sum(e == g for e, g in zip(expected, got))
    # int8 moves close scores (26 of these 28 agree on a VNNI CPU), while a broken graph (an ignored attention
    # mask, swapped inputs) agrees on none
    assert same >= 0.75 * len(questions), f"{same} of {len(questions)} top answers equal"


class _Counting:
    """A backend that counts the windows it is given."""

    def __init__(self, backend):
        self.backend, self.windows = backend, 0
        self.device, self.precision = backend.device, backend.precision

    def __call__(self, inputs):
        self.windows += len(inputs["input_ids"])
        return self.backend(inputs)


def test_int8_reads_close_calls_again_in_fp32_and_answers_exactly_as_fp32():
    fp32 = load_reader_model("models/minilm-squad", device="cpu", dtype="float32")
    int8 = load_reader_model("models/minilm-squad", device="cpu", dtype="int8")
    assert isinstance(int8.rescore, OnnxBackend) and int8.rescore.precision == "float32" and fp32.rescore is None
    first, again = _Counting(int8.backend), _Counting(int8.rescore)
    int8 = dataclasses.replace(int8, backend=first, rescore=again)
    questions, passages = _sample()
    options = ReadOptions(top_k=3)
    expected, got = read(fp32, questions, passages, options), read(int8, questions, passages, options)
    for e, g in zip(expected, got):
        assert [(a.data, a.document_offset) for a in e[:1]] == [(a.data, a.document_offset) for a in g[:1]]
        # the score's denominator still holds the int8 spans of the other windows
        assert e[0].score == pytest.approx(g[0].score, abs=0.1)
    # every window is read in int8 (about 4 per question here); again in fp32 only those near their question's best
    assert len(questions) <= again.windows <= 1.5 * len(questions) < first.windows, (again.windows, first.windows)


def test_an_int8_reader_hashes_its_weights_once_for_both_of_its_onnx_files(tiny_models, monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_int8.CACHE_VARIABLE, str(tmp_path))
    keys = []
    real_key = onnx_int8.content_key
    monkeypatch.setattr(onnx_int8, "content_key", lambda *a: keys.append(real_key(*a)) or keys[-1])
    int8 = load_reader_model(tiny_models["bert-uncased"], device="cpu", dtype="int8")
    assert len(keys) == 1 and int8.backend.key == int8.rescore.key == keys[0]
    assert int8.backend.session.path == tmp_path / "int8" / f"{keys[0]}.onnx"
    assert int8.rescore.session.path == tmp_path / "float32" / f"{keys[0]}.onnx"


def test_close_calls_are_the_windows_near_their_own_questions_best():
    spans = {
        0: (np.array([1]), np.array([2]), np.array([9.0, 3.0]), 0.0),  # question 0's best
        1: (np.array([1]), np.array([2]), np.array([7.5]), 0.0),  # within 2 of it
        2: (np.array([1]), np.array([2]), np.array([6.9]), 0.0),  # not
        3: (np.array([1]), np.array([2]), np.array([1.0]), 0.0),  # question 1's only window: its best
        4: (np.array([], dtype=int), np.array([], dtype=int), np.array([]), 5.0),  # no span: no call
    }
    questions = np.array([0, 0, 0, 1, 1])
    assert _close_calls(spans, questions, margin=2.0).tolist() == [0, 1, 3]
    assert _close_calls(spans, questions, margin=0.0).tolist() == [0, 3]


def _model(seed: int):
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return BertForQuestionAnswering(config).eval()


NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUTS = ["start_logits", "end_logits"]


def test_a_quantized_model_is_made_once_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_int8.CACHE_VARIABLE, str(tmp_path))
    exports = []
    real_export = onnx_int8.export_onnx
    monkeypatch.setattr(onnx_int8, "export_onnx", lambda *a: exports.append(a) or real_export(*a))
    first = onnx_int8.onnx_model_file(_model(0), NAMES, OUTPUTS, "int8")
    again = onnx_int8.onnx_model_file(_model(0), NAMES, OUTPUTS, "int8")
    exported = onnx_int8.onnx_model_file(_model(0), NAMES, OUTPUTS, "float32")  # kept from making the int8 file
    assert first == again and len(exports) == 1
    assert first.parent == tmp_path / "int8" and [p.name for p in first.parent.iterdir()] == [first.name]
    assert exported == tmp_path / "float32" / first.name and [p.name for p in exported.parent.iterdir()] == [first.name]


def test_the_fp32_onnx_backend_computes_torchs_fp32_logits():
    model = _model(3)
    onnx, torch_fp32 = OnnxBackend(model, NAMES, "float32"), TorchBackend(model, torch.device("cpu"), "float32")
    ids = torch.randint(1, 64, (3, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[2, 12:] = 0
    inputs = {"input_ids": (ids * mask).numpy(), "attention_mask": mask.numpy(),
              "token_type_ids": torch.zeros_like(ids).numpy()}
    for got, expected in zip(onnx(inputs), torch_fp32(inputs)):
        assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_changed_weights_never_reuse_a_stale_quantized_model(monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_int8.CACHE_VARIABLE, str(tmp_path))
    model = _model(0)
    before = onnx_int8.onnx_model_file(model, NAMES, OUTPUTS, "int8")
    with torch.no_grad():
        model.qa_outputs.bias[0] += 1.0  # one number of the weights changed
    after = onnx_int8.onnx_model_file(model, NAMES, OUTPUTS, "int8")
    assert after != before
    ids = torch.randint(0, 64, (1, 8))
    inputs = {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy(),
              "token_type_ids": torch.zeros_like(ids).numpy()}
    old_start = onnx_int8.OnnxSession(before)(inputs)[0]
    new_start = onnx_int8.OnnxSession(after)(inputs)[0]
    assert new_start[0, 0] - old_start[0, 0] == pytest.approx(1.0, abs=0.05)


def test_a_corrupt_cached_model_is_made_again(monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_int8.CACHE_VARIABLE, str(tmp_path))
    model = _model(1)
    path = onnx_int8.onnx_model_file(model, NAMES, OUTPUTS, "int8")
    path.write_bytes(path.read_bytes()[: 100])  # as if a disk filled up under an earlier version
    session = onnx_int8.onnx_session(model, NAMES, OUTPUTS, "int8")
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(random.randrange(100)))
    start, end = session({"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy(),
                          "token_type_ids": torch.zeros_like(ids).numpy()})
    assert start.shape == end.shape == (2, 8)


def test_making_the_int8_model_leaves_the_model_given_as_it_was(monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_int8.CACHE_VARIABLE, str(tmp_path))
    model = _model(2).to(torch.float16)
    model.set_attn_implementation("sdpa")
    onnx_int8.onnx_model_file(model, NAMES, OUTPUTS, "int8")  # the export traces fp32 and eager attention
    assert next(model.parameters()).dtype == torch.float16
    assert model.config._attn_implementation == "sdpa"
