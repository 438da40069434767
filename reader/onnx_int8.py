"""Run a Hugging Face encoder as an ONNX Runtime session, int8 or fp32: exported once, quantized, cached by content.

Why by hand: transformers 5 has no ONNX exporter of its own and optimum's (``optimum-onnx``) requires
transformers < 4.58, so sentence-transformers' ONNX backend cannot be used either. The recipe is the one those
tools follow: ``torch.onnx.export`` with dynamic batch and sequence axes, then ONNX Runtime's dynamic int8
quantization of every MatMul's weights (activations are quantized per batch at run time). ONNX Runtime's MLAS
kernels use VNNI or AMX int8 where the CPU has them and AVX2 elsewhere.

The cache: a quantized model is stored under ``cache_root()/int8/<key>.onnx``, the fp32 export it was made from
under ``cache_root()/float32/<key>.onnx`` (the int8 reader re-reads close calls with it), where the key hashes everything
the file depends on (the model's config and weights as loaded, the outputs exported, the recipe version, the
quantization settings and ONNX Runtime's version), so a changed model can never be served by a stale file.
Files are written to a temporary name and renamed into place, and one that cannot be loaded is rebuilt.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .hardware import cpu_features

logger = logging.getLogger(__name__)

#: Raised when the export or quantization steps change, so files made by an older recipe are not reused.
RECIPE_VERSION = 1
#: Where caches go unless CORPUSQA_CACHE says otherwise.
CACHE_VARIABLE = "CORPUSQA_CACHE"


def cache_root() -> Path:
    """``$CORPUSQA_CACHE``, else ``$XDG_CACHE_HOME/corpusqa``, else ``~/.cache/corpusqa``."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "corpusqa"


def quantization_settings() -> dict:
    """How weights are quantized on this CPU: the weights of every MatMul, per output channel (a shared scale per
    matrix changed the best span of 24 of 96 SQuAD windows against fp32's, per channel 10). With int8 dot
    products (VNNI), signed weights; without, MLAS multiplies u8 by s8 with ``vpmaddubsw``, whose 16-bit sums
    can saturate, so weights are unsigned (u8 by u8 does not saturate and kept the same 86 of 96 spans, where
    7-bit weights, ONNX Runtime's other remedy, kept 57)."""
    signed = cpu_features().int8_dot_products
    return {"weight_type": "QInt8" if signed else "QUInt8", "per_channel": True, "op_types": ["MatMul"]}


def content_key(model: torch.nn.Module, output_names: Sequence[str]) -> str:
    """A hash of what the quantized file is made from; equal keys mean interchangeable files."""
    import onnxruntime

    digest = hashlib.sha256()
    recipe = {
        "recipe": RECIPE_VERSION,
        "outputs": list(output_names),
        "quantization": quantization_settings(),
        "onnxruntime": onnxruntime.__version__,
        "config": model.config.to_dict(),
    }
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


#: The files a model is cached as, by precision: the plain export and its int8 quantization.
ONNX_PRECISIONS = ("float32", "int8")


def onnx_model_file(
    model: torch.nn.Module,
    input_names: Sequence[str],
    output_names: Sequence[str],
    precision: str = "int8",
    key: str | None = None,
) -> Path:
    """The cached ONNX file for ``model`` in ``precision`` (made now when missing): inputs by name, outputs as named.

    Both files live under one content key, ``cache_root()/<precision>/<key>.onnx``; the fp32 export that an int8
    file is quantized from is kept as the fp32 file, so a model is exported once for both. ``key`` is
    ``content_key(model, output_names)`` where the caller has it already (hashing the weights takes 0.1 s for
    MiniLM, 0.5 s for mpnet); None computes it."""
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"ONNX files come in {', '.join(ONNX_PRECISIONS)}, not {precision!r}")
    key = key or content_key(model, output_names)
    target = cache_root() / precision / f"{key}.onnx"
    if target.is_file():
        return target
    exported = cache_root() / "float32" / f"{key}.onnx"
    exported.parent.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as scratch:
        if not exported.is_file():
            logger.info("exporting the model to ONNX once; cached as %s", exported)
            fresh = Path(scratch) / "fp32.onnx"
            export_onnx(copy.deepcopy(model), input_names, output_names, fresh)  # ``model`` stays as it was
            os.replace(fresh, exported)
        if precision == "int8":
            logger.info("quantizing the model to int8 once; cached as %s", target)
            quantized = Path(scratch) / "int8.onnx"
            quantize(exported, quantized)
            os.replace(quantized, target)
    return target


def _probe(input_names: Sequence[str], vocabulary: int, batch: int, length: int, padded: int) -> dict[str, torch.Tensor]:
    """Inputs shaped like real windows: ids past the special tokens, the last row padded by ``padded`` tokens, a
    second segment in the second half (token types), so no part of the graph sees a constant."""
    generator = torch.Generator().manual_seed(batch * 1000 + length)
    mask = torch.ones((batch, length), dtype=torch.long)
    mask[-1, length - padded :] = 0
    tensors = {
        "input_ids": torch.randint(min(5, vocabulary - 1), vocabulary, (batch, length), generator=generator) * mask,
        "attention_mask": mask,
        "token_type_ids": torch.cat(
            [torch.zeros((batch, length // 2), dtype=torch.long), torch.ones((batch, length - length // 2), dtype=torch.long)],
            dim=1,
        ) * mask,
    }
    return {name: tensors[name] for name in input_names}


#: The inputs an export can take (``_probe`` makes them), in the order the traced graph takes them.
EXPORT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Traced(torch.nn.Module):
    """What is traced: ``model`` called with its inputs by name, returning its first ``outputs`` outputs.

    Tracing ``model`` itself fills the parameters between its inputs with their defaults, positionally, which
    some models refuse (a base ``BertModel`` sets ``use_cache`` from its keywords too: "got multiple values");
    and a base encoder's extra outputs (``pooler_output``) would be computed on every call and never read."""

    def __init__(self, model: torch.nn.Module, outputs: int) -> None:
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs = {name: value for name, value in given.items() if value is not None}
        return tuple(self.model(**inputs, return_dict=False)[: self.outputs])


def export_onnx(model: torch.nn.Module, input_names: Sequence[str], output_names: Sequence[str], path: Path) -> None:
    """Trace ``model`` in fp32 with eager attention into ``path``, batch and sequence axes dynamic, and check that
    the graph computes what the model does on inputs of another shape (tracing records Python's decisions as
    constants: traced with an unpadded batch, transformers skips the attention mask, and the graph would too).

    ``input_names`` are some of ``EXPORT_INPUTS``; ``output_names`` name the model's first outputs (with
    ``return_dict=False``), and only those are exported: a QA model's two logits, a base encoder's
    ``last_hidden_state`` without its ``pooler_output``.

    ``model`` itself is switched to fp32 and eager attention: ``onnx_model_file`` exports a copy, so the model it
    is given (which callers may keep running in torch) stays as it was."""
    model = model.to(torch.float32).eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # the traced graph of plain attention ops quantizes and fuses well
    unknown = sorted(set(input_names) - set(EXPORT_INPUTS))
    if unknown:
        raise ValueError(f"cannot export inputs {unknown}: only {', '.join(EXPORT_INPUTS)}")
    # The tracer takes keyword inputs in the order of forward's parameters, and names graph inputs in that order.
    input_names = sorted(input_names, key=EXPORT_INPUTS.index)
    traced = _Traced(model, len(output_names)).eval()  # the exporter restores this mode, recursively
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, *output_names]}
    vocabulary = model.config.vocab_size
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on Python control flow; the check below covers them
        torch.onnx.export(
            traced,
            (),
            str(path),
            kwargs=_probe(input_names, vocabulary, 2, 24, 9),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        check = _probe(input_names, vocabulary, 3, 40, 17)
        expected = [output.numpy() for output in traced(**check)]
    got = OnnxSession(path, threads=1)({name: tensor.numpy() for name, tensor in check.items()})
    if len(got) != len(expected):
        raise RuntimeError(f"the ONNX export of {type(model).__name__} has {len(got)} outputs, not {len(expected)}")
    mask = check["attention_mask"].numpy().astype(bool)
    worst = max(float(np.abs(e - g)[mask].max()) for e, g in zip(expected, got))
    if worst > 1e-3:
        raise RuntimeError(f"the ONNX export of {type(model).__name__} differs from the model by {worst:.3g}")


def quantize(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantization of ``source``'s weights (``quantization_settings``) into ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = quantization_settings()
    root = logging.getLogger()
    previous, root.disabled = root.disabled, True  # the quantizer's advice to pre-process, logged to the root
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=getattr(QuantType, settings["weight_type"]),
            per_channel=settings["per_channel"],
            op_types_to_quantize=settings["op_types"],
        )
    finally:
        root.disabled = previous


class OnnxSession:
    """An ONNX Runtime CPU session over a cached ONNX model (int8 or fp32), with as many threads as torch uses.

    :param path: the .onnx file.
    :param threads: intra-op threads; None: ``torch.get_num_threads()`` (so OMP_NUM_THREADS and
        ``torch.set_num_threads`` govern both backends alike).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {name: inputs[name] for name in self.input_names})


def onnx_session(
    model: torch.nn.Module,
    input_names: Sequence[str],
    output_names: Sequence[str],
    precision: str = "int8",
    key: str | None = None,
) -> OnnxSession:
    """A session over ``model``'s cached file in ``precision``; a cached file that cannot be loaded is made again.
    ``key``: as for ``onnx_model_file``."""
    key = key or content_key(model, output_names)
    path = onnx_model_file(model, input_names, output_names, precision, key)
    try:
        return OnnxSession(path)
    except Exception as error:  # onnxruntime raises its own error types for truncated or corrupt files
        logger.warning("cached ONNX model %s cannot be loaded (%s); making it again", path, error)
        path.unlink(missing_ok=True)
        return OnnxSession(onnx_model_file(model, input_names, output_names, precision, key))
