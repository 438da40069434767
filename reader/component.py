"""The reader as a Haystack 3 component, so it drops into a Haystack Pipeline and its YAML."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.serialization import allow_deserialization_module
from haystack.dataclasses import ExtractedAnswer
from haystack.utils import Secret, deserialize_secrets_inplace

from corpusqa.models import DEFAULT_READER

from .core import ReadOptions, read
from .model import ReaderModel, load_reader_model

_DEFAULTS = ReadOptions()

# Importing corpusqa's component is trusting corpusqa: Pipeline YAML that names its components loads.
allow_deserialization_module("corpusqa")


@component
class ExtractiveReader:
    """Extract answer spans for a query from documents, ranked across all of them (see ``core``)."""

    def __init__(
        self,
        model: str = DEFAULT_READER,
        device: str = "auto",
        dtype: str = "auto",
        token: Secret | None = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False),
        top_k: int = _DEFAULTS.top_k,
        max_seq_length: int = _DEFAULTS.max_seq_length,
        doc_stride: int = _DEFAULTS.doc_stride,
        max_question_length: int = _DEFAULTS.max_question_length,
        max_answer_length: int = _DEFAULTS.max_answer_length,
        n_best_per_window: int = _DEFAULTS.n_best_per_window,
        no_answer_threshold: float | None = _DEFAULTS.no_answer_threshold,
        no_answer: bool = _DEFAULTS.no_answer,
        batch_size: int = _DEFAULTS.batch_size,
        context_chars: int = _DEFAULTS.context_chars,
    ):
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.token = token
        self.options = ReadOptions(
            top_k=top_k,
            max_seq_length=max_seq_length,
            doc_stride=doc_stride,
            max_question_length=max_question_length,
            max_answer_length=max_answer_length,
            n_best_per_window=n_best_per_window,
            no_answer_threshold=no_answer_threshold,
            no_answer=no_answer,
            batch_size=batch_size,
            context_chars=context_chars,
        )
        self._loaded: ReaderModel | None = None

    def warm_up(self) -> None:
        """Load the model once; Pipeline calls this before the first run."""
        if self._loaded is None:
            token = self.token.resolve_value() if self.token else None
            self._loaded = load_reader_model(self.model, device=self.device, dtype=self.dtype, token=token)

    @property
    def loaded(self) -> ReaderModel:
        self.warm_up()
        assert self._loaded is not None
        return self._loaded

    @component.output_types(answers=list[ExtractedAnswer])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        no_answer_threshold: float | None = None,
    ) -> dict[str, list[ExtractedAnswer]]:
        """Answers for ``query``, best first; a no-answer (``data=None``) ranks first when the reader abstains."""
        options = self.options
        if top_k is not None:
            options = replace(options, top_k=top_k)
        if no_answer_threshold is not None:
            options = replace(options, no_answer_threshold=no_answer_threshold)
        return {"answers": read(self.loaded, query, documents, options)}

    def to_dict(self) -> dict[str, Any]:
        options = self.options
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            token=self.token.to_dict() if self.token else None,
            top_k=options.top_k,
            max_seq_length=options.max_seq_length,
            doc_stride=options.doc_stride,
            max_question_length=options.max_question_length,
            max_answer_length=options.max_answer_length,
            n_best_per_window=options.n_best_per_window,
            no_answer_threshold=options.no_answer_threshold,
            no_answer=options.no_answer,
            batch_size=options.batch_size,
            context_chars=options.context_chars,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractiveReader:
        deserialize_secrets_inplace(data["init_parameters"], keys=["token"])
        return default_from_dict(cls, data)
