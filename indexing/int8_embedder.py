"""Passages embedded with int8 weights through ONNX Runtime, for index runs on CPUs without AMX.

Why by hand: sentence-transformers has an ONNX backend (``backend="onnx"``), but it needs optimum-onnx, which
requires transformers < 4.58 and cannot be installed beside transformers 5. So the Hugging Face encoder inside
the sentence-transformers model is swapped for ``Int8Encoder``, a module that runs the same encoder exported and
quantized by ``reader/onnx_int8.py`` (cached by content, as the reader's). Tokenizing, pooling and normalizing
stay sentence-transformers' own. This leans on sentence-transformers 6's structure: the first module is a
``Transformer`` whose ``forward`` calls ``self.model.forward(**inputs, return_dict=True)``, reads
``["last_hidden_state"]`` and ``self.model.config``; a model of any other shape is refused with
``NotSwappable``, and ``use_int8`` then leaves the embedder in float with one warning naming the model.

Nothing shared is changed. Haystack caches one sentence-transformers model per set of init arguments, so the
question embedder of a pipeline in the same process (a server, the UI) may hold the very model an index run's
passage embedder holds; and the export switches the model it is given to eager attention. So the embedder gets
its own backend, over shallow copies of the ``SentenceTransformer`` and its ``Transformer``, and the export works
on a copy of the encoder: questions keep being embedded by the float model, as before.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: The output the Transformer module reads, the only one exported.
OUTPUT = "last_hidden_state"
#: Where ``use_int8`` keeps an embedder's own backends: (float, int8).
_BACKENDS = "_corpusqa_int8_backends"


class NotSwappable(Exception):
    """The embedder is not the sentence-transformers structure the int8 swap knows, or its export failed."""


class Int8Encoder(torch.nn.Module):
    """Stands in for a Hugging Face encoder inside a sentence-transformers ``Transformer``: takes the tokenizer's
    tensors by name, returns ``last_hidden_state`` (fp32, on the CPU) from an int8 ONNX Runtime session.

    :param session: an ``OnnxSession`` over the quantized encoder (``onnx_session``).
    :param config: the encoder's config, which sentence-transformers reads (hidden size, maximum length).
    :param input_names: the inputs the session was exported with.
    """

    def __init__(self, session: Any, config: Any, input_names: list[str]) -> None:
        super().__init__()
        self.session, self.config, self.input_names = session, config, list(input_names)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, **inputs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        unexpected = sorted(k for k, v in inputs.items() if torch.is_tensor(v) and k not in self.input_names)
        if unexpected:  # an input the exported graph cannot take would be silently dropped
            raise TypeError(f"the int8 encoder takes {', '.join(self.input_names)}, not {', '.join(unexpected)}")
        ids = inputs["input_ids"]
        arrays = {
            name: (inputs[name] if inputs.get(name) is not None else torch.zeros_like(ids)).cpu().numpy().astype(np.int64)
            for name in self.input_names
        }
        (hidden,) = self.session(arrays)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))


def int8_sentence_transformer(model: Any, name: str | None = None) -> Any:
    """A copy of the ``SentenceTransformer`` ``model`` whose encoder runs in int8 (exported and quantized now,
    or loaded from the cache); ``model`` is left as it was. ``name`` names the model in errors.

    :raises NotSwappable: ``model`` is not a text ``SentenceTransformer`` starting with a ``Transformer`` over a
        Hugging Face encoder on the CPU, or ONNX Runtime is missing, or the export fails."""
    name = name or type(model).__name__
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules.transformer import Transformer
        from transformers import PreTrainedModel

        from corpusqa.reader.hardware import int8_available
        from corpusqa.reader.onnx_int8 import EXPORT_INPUTS, onnx_session
    except ImportError as error:
        raise NotSwappable(f"{name}: cannot run in int8 without {error.name}") from error
    if not int8_available():
        raise NotSwappable(f"{name}: cannot run in int8 without onnxruntime")

    def refuse(reason: str) -> NotSwappable:
        return NotSwappable(f"{name} is not the sentence-transformers model the int8 swap knows: {reason}")

    if not isinstance(model, SentenceTransformer) or len(model) == 0:
        raise refuse(f"a {type(model).__name__}, not a SentenceTransformer")
    first_key, transformer = next(iter(model._modules.items()))
    if not isinstance(transformer, Transformer):
        raise refuse(f"its first module is a {type(transformer).__name__}, not a Transformer")
    encoder = transformer.model
    if isinstance(encoder, Int8Encoder):
        return model
    if not isinstance(encoder, PreTrainedModel):
        raise refuse(f"its encoder is a {type(encoder).__name__}, not a Hugging Face model")
    if getattr(transformer, "backend", "torch") != "torch":
        raise refuse(f"it runs on the {transformer.backend} backend, not torch")
    expected = {"text": {"method": "forward", "method_output_name": OUTPUT}}
    if transformer.modality_config != expected:
        raise refuse(f"it reads {transformer.modality_config}, not {expected}")
    if encoder.device.type != "cpu":
        raise refuse(f"it runs on {encoder.device}; int8 runs on the CPU only")
    tokenizer = getattr(transformer, "tokenizer", None)
    input_names = list(getattr(tokenizer, "model_input_names", None) or [])
    if not {"input_ids", "attention_mask"} <= set(input_names) <= set(EXPORT_INPUTS):
        raise refuse(f"its tokenizer gives {input_names}, not input_ids and attention_mask (and token_type_ids)")

    try:  # the export traces a copy: the shared encoder keeps its dtype and attention
        session = onnx_session(encoder, input_names, [OUTPUT], "int8")
    except Exception as error:  # torch's exporter and ONNX Runtime raise their own error types
        raise NotSwappable(f"{name}: the int8 export failed: {type(error).__name__}: {error}") from error

    swapped = copy.copy(transformer)
    swapped._modules = dict(transformer._modules)  # its own children; the shallow copy shares the dict
    swapped._modules["model"] = Int8Encoder(session, encoder.config, input_names)
    result = copy.copy(model)
    result._modules = dict(model._modules)
    result._modules[first_key] = swapped
    return result


def use_int8(embedder: Any) -> bool:
    """Make a Haystack sentence-transformers embedder (warmed up here if it is not) embed in int8, on a backend of
    its own; False, with one warning naming the model, where it cannot (it then embeds in fp32, as loaded).
    Made once per embedder: later calls switch back to the int8 backend made first."""
    name = str(getattr(embedder, "model", type(embedder).__name__))
    kept = getattr(embedder, _BACKENDS, None)
    if kept is not None:
        embedder.embedding_backend = kept[1]
        return True
    try:
        if getattr(embedder, "embedding_backend", None) is None and hasattr(embedder, "warm_up"):
            embedder.warm_up()
        backend = getattr(embedder, "embedding_backend", None)
        if backend is None or not hasattr(backend, "model"):
            raise NotSwappable(f"{name} is not a Haystack sentence-transformers embedder (no embedding_backend.model)")
        int8_backend = copy.copy(backend)
        int8_backend.model = int8_sentence_transformer(backend.model, name)
    except NotSwappable as error:
        logger.warning("passages are embedded in fp32, not int8: %s", error)
        return False
    setattr(embedder, _BACKENDS, (backend, int8_backend))
    embedder.embedding_backend = int8_backend
    return True


def use_float(embedder: Any) -> None:
    """Undo ``use_int8``: the embedder embeds with the float model it was loaded with again (no-op if never
    swapped)."""
    kept = getattr(embedder, _BACKENDS, None)
    if kept is not None:
        embedder.embedding_backend = kept[0]


def runs_int8(embedder: Any) -> bool:
    """Whether the embedder's sentence-transformers model now runs its encoder in int8."""
    model = getattr(getattr(embedder, "embedding_backend", None), "model", None)
    try:
        return isinstance(model[0].model, Int8Encoder)
    except (TypeError, IndexError, AttributeError, KeyError):
        return False
