"""Load any Hugging Face extractive-QA model, by hub id or local folder, ready for fast inference.

Everything that depends on *which* model was loaded (tokenizer quirks, usable sequence length, device,
dtype, the model's tuned no-answer threshold) is settled here once, so the rest of the reader can treat
every architecture alike.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import normalizers
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

from corpusqa.models import BUILTIN_READERS

from .backend import OnnxBackend, ReaderBackend, make_backend
from .hardware import resolve_device, resolve_precision

logger = logging.getLogger(__name__)

#: Written beside a model by `corpusqa eval`/`train`; holds the no-answer threshold tuned on SQuAD 2.0.
READER_SETTINGS_FILE = "corpusqa_reader.json"

#: Architectures whose position ids start after the padding index, so two positions are unusable.
_OFFSET_POSITION_MODELS = {"roberta", "xlm-roberta", "camembert", "longformer", "mpnet", "data2vec-text", "xmod"}

#: Share of alphabetic vocabulary entries with an upper-case letter above which a vocabulary is cased.
_CASED_VOCABULARY_SHARE = 0.01


class ReaderLoadError(ValueError):
    """The model named cannot serve as an extractive reader; the message says why and what to do."""


@dataclass(frozen=True)
class ReaderModel:
    """A loaded QA model with the facts about it that decoding needs."""

    name: str
    backend: ReaderBackend
    tokenizer: object
    max_positions: int
    no_answer_threshold: float | None
    #: Per retriever (bm25, dense, hybrid): the no-answer threshold and retrieval weight tuned over a corpus.
    corpus_settings: dict[str, CorpusSettings] = field(default_factory=dict)
    #: With an int8 backend: the model in fp32 (ONNX Runtime), which reads again the windows holding close calls
    #: (``core``, ``ReadOptions.rescore_margin``), so int8's rounding does not pick the answer.
    rescore: ReaderBackend | None = None

    @property
    def input_names(self) -> list[str]:
        return list(self.tokenizer.model_input_names)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> str:
        """float32, bfloat16, float16 or int8: what the backend computes in."""
        return self.backend.precision


def load_reader_model(
    name_or_path: str | Path,
    device: str | torch.device | None = "auto",
    dtype: str | None = "auto",
    token: str | None = None,
) -> ReaderModel:
    """Load tokenizer and QA model; refuse models without a trained QA head or without a fast tokenizer.

    ``name_or_path`` is a built-in reader's name (``corpusqa.models.BUILTIN_READERS``), a folder or a hub id.
    ``dtype``: ``auto`` (the hardware module's choice), float32, bfloat16, float16, or int8 (ONNX Runtime on
    the CPU; the quantized model is made on first use and cached, ``onnx_int8``; its fp32 export, run by ONNX
    Runtime too, is kept beside it to re-read close calls, ``rescore``).

    Safetensors weights are preferred (transformers' default); remote code is never trusted.
    """
    name = str(name_or_path)
    local = BUILTIN_READERS.get(name, Path(name).expanduser())
    if local.exists():
        if not (local / "config.json").is_file():
            raise ReaderLoadError(f"{local} is not a model folder: it has no config.json")
        name = str(local)
    elif name.startswith(("/", "./", "../", "~")):
        raise ReaderLoadError(f"{name}: no such model folder")
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False, token=token)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False, token=token)
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            name, config=config, trust_remote_code=False, token=token, output_loading_info=True
        )
    except (OSError, ValueError, KeyError) as error:
        raise ReaderLoadError(f"cannot load {name} as an extractive QA model: {error}") from error
    untrained = [key for key in info.get("missing_keys", ()) if "qa_outputs" in key]
    if untrained:
        raise ReaderLoadError(
            f"{name} is not an extractive QA model: its weights have no QA head ({', '.join(sorted(untrained))} "
            "missing). Fine-tune it first with `corpusqa train`."
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ReaderLoadError(f"{name} has no fast tokenizer; character offsets need one (tokenizer.json)")
    if tokenizer.padding_side != "right":
        raise ReaderLoadError(f"{name} pads on the left; only question-first, right-padded models are supported")
    match_casing_to_vocabulary(tokenizer, name)

    target = resolve_device(device)
    precision = resolve_precision(dtype, target)
    backend = make_backend(model, tokenizer.model_input_names, target, precision)
    return ReaderModel(
        name=name,
        backend=backend,
        rescore=(
            OnnxBackend(model, tokenizer.model_input_names, "float32", backend.key)
            if isinstance(backend, OnnxBackend)
            else None
        ),
        tokenizer=tokenizer,
        max_positions=usable_positions(config, tokenizer),
        no_answer_threshold=stored_no_answer_threshold(local) if local.exists() else None,
        corpus_settings=stored_corpus_settings(local) if local.exists() else {},
    )


def usable_positions(config, tokenizer) -> int:
    """Longest input the model accepts, also for models whose tokenizer config lacks model_max_length."""
    positions = getattr(config, "max_position_embeddings", None) or 512
    if config.model_type in _OFFSET_POSITION_MODELS:
        positions -= 2
    declared = tokenizer.model_max_length
    return min(positions, declared) if declared and declared < 1_000_000 else positions


def match_casing_to_vocabulary(tokenizer, name: str) -> None:
    """Make a WordPiece normalizer lower-case exactly when its vocabulary is uncased.

    Some hub uploads ship a cased vocabulary with `do_lower_case: true` (or the reverse), which silently
    turns most words into [UNK] or wrong pieces. The vocabulary is the ground truth the model was trained on.
    """
    backend = tokenizer.backend_tokenizer
    normalizer = backend.normalizer
    if not isinstance(normalizer, normalizers.BertNormalizer):
        return
    lowercases = normalizer.normalize_str("A") == "a"
    cased = vocabulary_is_cased(tokenizer.get_vocab())
    if lowercases != cased:
        return
    logger.warning(
        "%s: tokenizer %s but its vocabulary is %s; %s to match the vocabulary",
        name,
        "lower-cases" if lowercases else "keeps case",
        "cased" if cased else "uncased",
        "keeping case" if cased else "lower-casing",
    )
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None if not cased else False, lowercase=not cased
    )


def vocabulary_is_cased(vocabulary: dict[str, int]) -> bool:
    words = [token.removeprefix("##") for token in vocabulary if not token.startswith("[")]
    alphabetic = [word for word in words if word.isalpha()]
    if not alphabetic:
        return False
    upper = sum(1 for word in alphabetic if any(ch.isupper() for ch in word))
    return upper / len(alphabetic) > _CASED_VOCABULARY_SHARE


def stored_no_answer_threshold(folder: Path) -> float | None:
    """The SQuAD 2.0 threshold stored with the model; None where none was stored (a reader tuned only over a
    corpus has settings without one)."""
    settings = folder / READER_SETTINGS_FILE
    if not settings.is_file():
        return None
    try:
        stored = json.loads(settings.read_text(encoding="utf-8"))
        return None if "no_answer_threshold" not in stored else float(stored["no_answer_threshold"])
    except (ValueError, KeyError, TypeError) as error:
        raise ReaderLoadError(f"{settings}: cannot read no_answer_threshold ({error})") from error


@dataclass(frozen=True)
class CorpusSettings:
    """How a reader abstains and weighs retrieval over a corpus searched by one retriever (``corpusqa tune``).

    ``no_answer_threshold``: abstain when the best span's null logit minus its score exceeds this.
    ``retrieval_weight``: a span's score is its logit plus this times its passage's retrieval score.
    """

    no_answer_threshold: float
    retrieval_weight: float = 0.0


def stored_corpus_settings(folder: Path) -> dict[str, CorpusSettings]:
    settings = folder / READER_SETTINGS_FILE
    if not settings.is_file():
        return {}
    try:
        stored = json.loads(settings.read_text(encoding="utf-8")).get("corpus", {})
        return {
            retriever: CorpusSettings(float(v["no_answer_threshold"]), float(v.get("retrieval_weight", 0.0)))
            for retriever, v in stored.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ReaderLoadError(f"{settings}: cannot read the corpus settings ({error})") from error


def save_corpus_settings(folder: Path, retriever: str, tuned: CorpusSettings, evidence: dict) -> None:
    """Record what `corpusqa tune` found for ``retriever``, with the measurements behind it."""
    settings = folder / READER_SETTINGS_FILE
    current = json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else {}
    current.setdefault("corpus", {})[retriever] = {**asdict(tuned), "tuned_on": evidence}
    settings.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")


def save_no_answer_threshold(folder: Path, threshold: float) -> None:
    """Record the threshold an evaluation found best, so the reader uses it by default."""
    settings = folder / READER_SETTINGS_FILE
    current = json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else {}
    current["no_answer_threshold"] = threshold
    settings.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
