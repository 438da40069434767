"""The reader as a Haystack 3 component, so it drops into a Haystack Pipeline and its YAML."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.serialization import allow_deserialization_module
from haystack.dataclasses import ExtractedAnswer
from haystack.utils import Secret, deserialize_secrets_inplace

from corpusqa.models import DEFAULT_READER

from .core import read
from .model import ReaderModel, load_reader_model
from .options import ReadOptions

# Importing corpusqa's component is trusting corpusqa: Pipeline YAML that names its components loads.
allow_deserialization_module("corpusqa")


@component
class ExtractiveReader:
    """Extract answer spans for a query from documents, ranked across all of them (see ``core``).

    :param model: hub id or folder of an extractive QA model (default: the shipped reader).
    :param device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
    :param dtype: ``auto`` (the hardware module's choice: bf16 on CUDA and AMX CPUs, int8 on CPUs with AVX-512
        VNNI and no AMX, else fp32), ``float32``, ``bfloat16``, ``float16``, or ``int8`` (ONNX Runtime on the CPU,
        close calls read again in fp32: ``ReadOptions.rescore_margin``).
    :param token: Hugging Face token for private hub models.
    :param options: how the reader cuts, decodes and ranks (``ReadOptions``, or a dict of some of its fields;
        the rest keep their defaults). Serialised whole, as a mapping of every field.
    """

    def __init__(
        self,
        model: str = DEFAULT_READER,
        device: str = "auto",
        dtype: str = "auto",
        token: Secret | None = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False),
        options: ReadOptions | dict[str, Any] | None = None,
    ):
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.token = token
        self.options = options if isinstance(options, ReadOptions) else ReadOptions.from_dict(options or {})
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
        self, query: str, documents: list[Document], top_k: int | None = None, options: ReadOptions | None = None
    ) -> dict[str, list[ExtractedAnswer]]:
        """Answers for ``query``, best first; a no-answer (``data=None``) ranks first when the reader abstains.

        :param query: the question.
        :param documents: the passages to read.
        :param top_k: answers to return (default: the options').
        :param options: options for this call instead of the component's.
        """
        chosen = options or self.options
        if top_k is not None:
            chosen = replace(chosen, top_k=top_k)
        return {"answers": read(self.loaded, query, documents, chosen)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            token=self.token.to_dict() if self.token else None,
            options=self.options.to_dict(),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractiveReader:
        deserialize_secrets_inplace(data["init_parameters"], keys=["token"])
        return default_from_dict(cls, data)
