"""Passages embedded in int8 (indexing/int8_embedder.py): fp32's vectors, chosen exactly where the hardware module
says so, and a fallback to fp32 with a warning for embedders the swap does not know."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from haystack import Document
from shared_data import SAMPLE_DIR

from corpusqa.indexing import int8_embedder
from corpusqa.indexing.indexer import IndexSettings, index_paths
from corpusqa.indexing.int8_embedder import Int8Encoder, runs_int8, use_int8
from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.reader import hardware
from corpusqa.reader.hardware import EMBED_PRECISION_VARIABLE, CpuFeatures

pytest.importorskip("onnxruntime")

NO_AMX = CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True)
AMX = CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True, amx_bf16=True)


def _paragraphs(count: int) -> list[str]:
    data = json.loads((SAMPLE_DIR / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    return [p["context"] for article in data for p in article["paragraphs"]][:count]


def _vectors(embedder, texts: list[str]) -> np.ndarray:
    documents = embedder.run([Document(content=text) for text in texts])["documents"]
    return np.array([d.embedding for d in documents])


@pytest.fixture
def policy(monkeypatch):
    """Set the CPU the hardware module sees: policy(features, onnxruntime)."""
    monkeypatch.delenv(EMBED_PRECISION_VARIABLE, raising=False)

    def set_policy(features: CpuFeatures, onnxruntime: bool = True) -> None:
        monkeypatch.setattr(hardware, "cpu_features", lambda: features)
        monkeypatch.setattr(hardware, "int8_available", lambda: onnxruntime)

    return set_policy


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for number, text in enumerate(_paragraphs(3)):
        (folder / f"p{number}.txt").write_text(text, encoding="utf-8")
    return folder


def test_int8_passage_vectors_are_fp32_s_and_the_shared_float_model_is_left_alone():
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder

    paragraphs = _paragraphs(12)
    embedder = IndexSettings().embedder()
    embedder.warm_up()
    # Haystack hands embedders with the same arguments one model: a question embedder in the same process
    question = SentenceTransformersTextEmbedder(model=embedder.model, normalize_embeddings=True)
    question.warm_up()
    float_model = question.embedding_backend.model
    fp32 = _vectors(embedder, paragraphs)
    assert use_int8(embedder) and runs_int8(embedder)
    int8 = _vectors(embedder, paragraphs)
    cosine = (fp32 * int8).sum(axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() >= 0.99, cosine
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-4)  # pooling and normalizing are still ST's

    assert question.embedding_backend.model is float_model and not runs_int8(question)
    encoder = float_model[0].model
    assert type(encoder).__name__ == "BertModel" and encoder.config._attn_implementation != "eager"
    assert np.allclose(_vectors(embedder.__class__(model=embedder.model, normalize_embeddings=True), paragraphs), fp32,
                       atol=1e-5)


@pytest.mark.parametrize(("features", "onnxruntime", "expected"), [
    (NO_AMX, True, "int8"),
    (NO_AMX, False, "float32"),
    (AMX, True, "bfloat16"),
])
def test_an_index_run_embeds_in_int8_exactly_where_the_hardware_module_says_so(
    policy, corpus, tmp_path, features, onnxruntime, expected
):
    policy(features, onnxruntime)
    assert hardware.embedding_precision_for(torch.device("cpu")) == expected
    embedder = IndexSettings().embedder()
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        report = index_paths([corpus], store, embedder, progress=False)
        assert report.indexed == 3 and report.embedding_precision == expected
        assert runs_int8(embedder) == (expected == "int8")
        assert all(len(d.embedding) == 384 for d in store.filter_documents())


def test_the_variable_forces_int8_where_the_policy_says_bf16_and_the_embedder_goes_back_after(
    policy, monkeypatch, corpus, tmp_path
):
    policy(AMX)
    monkeypatch.setenv(EMBED_PRECISION_VARIABLE, "int8")
    assert not hardware.embeds_in_bf16(torch.device("cpu")), "questions are not int8: fp32"
    embedder = IndexSettings().embedder()
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        assert index_paths([corpus], store, embedder, progress=False).embedding_precision == "int8"
        assert runs_int8(embedder)
        monkeypatch.setenv(EMBED_PRECISION_VARIABLE, "float32")
        (corpus / "new.txt").write_text(_paragraphs(4)[-1], encoding="utf-8")
        assert index_paths([corpus], store, embedder, progress=False).embedding_precision == "float32"
        assert not runs_int8(embedder)


class _OddEmbedder:
    """A Haystack-like embedder whose model is no sentence-transformers one."""

    model = "odd-model"

    def __init__(self):
        self.embedding_backend = SimpleNamespace(model=torch.nn.Linear(2, 2))

    def warm_up(self):
        pass

    def run(self, documents):
        return {"documents": [Document(content=d.content, meta=d.meta, embedding=[1.0, 0.0]) for d in documents]}


def test_an_embedder_the_swap_does_not_know_embeds_in_fp32_with_one_warning_naming_it(policy, corpus, tmp_path, caplog):
    policy(NO_AMX)
    embedder = _OddEmbedder()
    with caplog.at_level(logging.WARNING, logger=int8_embedder.__name__), EmbeddedDocumentStore(tmp_path / "s") as store:
        report = index_paths([corpus], store, embedder, settings=IndexSettings(commit_files=1), progress=False)
    assert report.indexed == 3 and report.embedding_precision == "float32" and not report.failed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # one per run, not one per batch
    assert "odd-model" in warnings[0] and "not a SentenceTransformer" in warnings[0]
    assert embedder.embedding_backend.model.__class__ is torch.nn.Linear


def test_a_failed_export_embeds_in_fp32_with_a_warning(policy, monkeypatch, caplog):
    policy(NO_AMX)

    def fail(*args, **kwargs):
        raise RuntimeError("the ONNX export of BertModel differs from the model by 2.1")

    monkeypatch.setattr("corpusqa.reader.onnx_int8.onnx_session", fail)
    embedder = IndexSettings().embedder()
    with caplog.at_level(logging.WARNING, logger=int8_embedder.__name__):
        assert not use_int8(embedder)
    assert not runs_int8(embedder)
    assert "the int8 export failed" in caplog.text and "differs from the model" in caplog.text


def test_the_int8_encoder_refuses_inputs_its_graph_cannot_take():
    encoder = Int8Encoder(session=None, config=None, input_names=["input_ids", "attention_mask"])
    ids = torch.ones((1, 4), dtype=torch.long)
    with pytest.raises(TypeError, match="not position_ids"):
        encoder(input_ids=ids, attention_mask=ids, position_ids=ids)
