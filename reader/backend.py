"""The reader's one seam to whatever runs its model: a batch of windows in, start and end logits out.

A backend knows nothing of questions, passages or answers. Window geometry (``windows.py``), span decoding
(``decoding.py``) and ranking (``core.py``) are shared by every backend, so two backends given the same windows
can differ only in the logits they compute. Two backends exist:

* ``TorchBackend``: the Hugging Face model in fp32, bf16 or fp16, on the CPU or a GPU;
* ``OnnxBackend``: the same model exported to ONNX, run by ONNX Runtime on the CPU (``onnx_int8.py``): with
  int8 weights, for CPUs without bf16 matrix units, and in fp32 for the int8 reader's re-reading of close calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch
from transformers import PreTrainedModel

#: The float dtypes a ``TorchBackend`` runs in, by their names in ``options.PRECISIONS``.
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: What every backend returns, in this order.
OUTPUT_NAMES = ("start_logits", "end_logits")


class ReaderBackend(Protocol):
    """Runs a QA model over padded windows.

    ``inputs`` maps the tokenizer's input names (``input_ids``, ``attention_mask``, and ``token_type_ids`` where
    the model has them) to int64 arrays of shape (windows, tokens). The result is the start and end logits, fp32
    tensors of that shape on ``device``.
    """

    device: torch.device
    precision: str

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchBackend:
    """The model run by torch in ``precision`` (a name in ``TORCH_DTYPES``) on ``device``.

    :param model: a Hugging Face extractive-QA model; moved to ``device`` and ``precision`` here.
    :param device: where it runs.
    :param precision: float32, bfloat16 or float16.
    """

    def __init__(self, model: PreTrainedModel, device: torch.device, precision: str) -> None:
        self.model = model.to(device=device, dtype=TORCH_DTYPES[precision]).eval()
        self.device = device
        self.precision = precision

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in inputs.items()}
        with torch.inference_mode():
            output = self.model(**tensors)
        return output.start_logits.float(), output.end_logits.float()


class OnnxBackend:
    """The model exported to ONNX and run by ONNX Runtime on the CPU (made once and cached: ``onnx_int8``).

    In int8 it is the reader of CPUs without bf16 matrix units. In fp32 it re-reads the int8 reader's close calls:
    its logits are torch's fp32 logits to about 1e-5, at about twice torch's speed on the few windows a question
    re-reads (2-core AMD Zen 4: 51-68 windows/s against 24-32 for 1-4 windows of 192 tokens).

    :param model: a Hugging Face extractive-QA model in fp32 (left as it is); it is exported once, then only the session runs.
    :param input_names: the tokenizer's input names, which the exported graph takes.
    :param precision: int8 or float32 (``onnx_int8.ONNX_PRECISIONS``).
    :param key: the model's content key (``onnx_int8.content_key``), where another backend of the same model has it
        already (``key``): the int8 reader and its fp32 re-reader hash the weights once; None computes it.
    """

    device = torch.device("cpu")

    def __init__(
        self, model: PreTrainedModel, input_names: Sequence[str], precision: str = "int8", key: str | None = None
    ) -> None:
        from .onnx_int8 import content_key, onnx_session

        self.key = key or content_key(model, OUTPUT_NAMES)
        self.session = onnx_session(model, input_names, OUTPUT_NAMES, precision, self.key)
        self.precision = precision

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.session(inputs)
        return torch.from_numpy(start), torch.from_numpy(end)


def make_backend(
    model: PreTrainedModel, input_names: Sequence[str], device: torch.device, precision: str
) -> ReaderBackend:
    """The backend that runs ``model`` in ``precision`` (already resolved: ``hardware.resolve_precision``)."""
    if precision == "int8":
        return OnnxBackend(model, input_names, "int8")
    return TorchBackend(model, device, precision)
