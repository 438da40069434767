import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from tiny_models import ARCHITECTURES, build_tiny_model

QA_CLASS = {
    "bert-uncased": "BertForQuestionAnswering",
    "bert-cased": "BertForQuestionAnswering",
    "electra": "ElectraForQuestionAnswering",
    "roberta": "RobertaForQuestionAnswering",
}


def test_architectures_constant():
    assert ARCHITECTURES == ("bert-uncased", "bert-cased", "electra", "roberta")


def test_unknown_arch_rejected(tmp_path):
    with pytest.raises(ValueError):
        build_tiny_model("gpt2", tmp_path / "x")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_loads_with_auto_classes_and_runs_a_full_window(tiny_models, arch):
    folder = tiny_models[arch]
    model, info = AutoModelForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
    assert type(model).__name__ == QA_CLASS[arch]
    assert model.config.architectures == [QA_CLASS[arch]]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert (folder / "model.safetensors").is_file()

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.is_fast
    assert tok.model_max_length == 512
    enc = tok(
        "Who lives there?",
        "Paris is big. " * 200,
        truncation="only_second",
        max_length=512,  # full window: catches RoBERTa's padding_idx + 1 position offset
        padding="max_length",
        return_tensors="pt",
    )
    assert enc["input_ids"].shape == (1, 512)
    with torch.no_grad():
        out = model(**enc)
    assert out.start_logits.shape == out.end_logits.shape == (1, 512)


@pytest.mark.parametrize("arch", ["bert-uncased", "electra"])
def test_uncased_tokenizers_lower_case(tiny_models, arch):
    tok = AutoTokenizer.from_pretrained(tiny_models[arch])
    assert tok.backend_tokenizer.normalizer.normalize_str("AbC") == "abc"
    assert tok.tokenize("PARIS") == tok.tokenize("paris")


def test_cased_tokenizer_preserves_case_and_unicode(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["bert-cased"])
    assert tok.backend_tokenizer.normalizer.normalize_str("AbC") == "AbC"
    assert tok.backend_tokenizer.normalizer.normalize_str("Café") == "Café"
    assert tok.tokenize("Paris") != tok.tokenize("paris")
    assert 2000 <= len(tok) <= 4000
    tokens = tok.tokenize("Café in Zürich, 東京 😀 naïve")
    assert tok.unk_token not in tokens
    assert tokens[0].startswith("C")  # capital kept


def test_roberta_offsets_exclude_leading_space(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["roberta"])
    question, context = "Who?", "Paris is big"
    enc = tok(question, context, return_offsets_mapping=True)
    ctx = [off for off, sid in zip(enc["offset_mapping"], enc.sequence_ids()) if sid == 1]
    assert len(ctx) >= 3
    assert ctx[0][0] == 0
    for start, end in ctx:
        assert end > start
        assert not context[start].isspace()
    # every word start is some token's start
    assert {0, 6, 9} <= {start for start, _ in ctx}
    assert 2000 <= len(tok) <= 4000


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_same_seed_same_weights(tmp_path, arch):
    a = load_file(build_tiny_model(arch, tmp_path / "a", seed=7) / "model.safetensors")
    b = load_file(build_tiny_model(arch, tmp_path / "b", seed=7) / "model.safetensors")
    c = load_file(build_tiny_model(arch, tmp_path / "c", seed=8) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_no_model_max_length(tmp_path, arch):
    folder = build_tiny_model(arch, tmp_path / arch, model_max_length=False)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "model_max_length" not in config
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.model_max_length > 1e20
