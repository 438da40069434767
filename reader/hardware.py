"""The one place that decides where models run and in which precision: device, dtypes and CPU features.

Reading (the reader), embedding (the indexer and query retrieval) and training all ask here, so a policy changes in
one place. CPU features are read once per process from /proc/cpuinfo and narrowed by ``ONEDNN_MAX_CPU_ISA``: when a
user (or a benchmark) caps oneDNN at an instruction set, the features above it are treated as absent, because the
matrix kernels will not use them.

Measured policies (benchmarks/reader_speed.py, benchmarks/train_step.py; numbers in docs/performance.md):
  * Inference runs in bf16 on CPUs with AMX tiles, where it is about three times as fast as fp32; on CPUs with
    AVX-512 VNNI but no AMX in int8 (``reader/onnx_int8.py``), close calls re-read in fp32; elsewhere in fp32
    (``inference_precision`` says why).
  * Reading batches (``reading_batch_size``): 64 windows on a GPU, 8 on CPUs with AMX, 4 on other CPUs.
  * Embedding (``embedding_precision_for``): bf16 autocast on AMX CPUs, for passages and
    questions alike; without AMX, index runs embed passages with int8 weights through ONNX Runtime
    (``indexing/int8_embedder.py``) while questions stay fp32; ``CORPUSQA_EMBED_PRECISION`` overrides it.
  * Training autocasts to bf16 on CPUs with bf16 arithmetic (AMX, or AVX-512 BF16 as on AMD Zen 4): a MiniLM step
    took 4.48 s in bf16 against 6.87 s in fp32 on a 2-core Zen 4. Master weights stay fp32. Training on a CPU caps
    oneDNN's kernel cache (``bound_training_kernel_cache``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import importlib.util
import os
import platform
from pathlib import Path

import torch

from .options import PRECISIONS

#: oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA), lowest first, and the CPU flags each one admits.
_ISA_ORDER = ["SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16",
              "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16", "AVX10_2_512",
              "AVX10_2_512_AMX_2", "DEFAULT", "ALL"]
_LOWEST_ISA_FOR = {"avx2": "AVX2", "avx512_vnni": "AVX512_CORE_VNNI", "avx512_bf16": "AVX512_CORE_BF16",
                   "amx_bf16": "AVX512_CORE_AMX"}


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
    """The CPU's vector and matrix features that change which precision is fastest."""

    avx2: bool = False
    avx512_vnni: bool = False  # int8 dot products
    avx512_bf16: bool = False  # bf16 dot products (Cooper Lake, AMD Zen 4 and later)
    amx_bf16: bool = False  # bf16 matrix tiles (Intel Sapphire Rapids and later)

    @property
    def int8_dot_products(self) -> bool:
        """int8 matmuls accumulate without saturating 16-bit sums (VNNI; AMX CPUs have it too)."""
        return self.avx512_vnni or self.amx_bf16

    @property
    def bf16_arithmetic(self) -> bool:
        """bf16 matmuls run faster than fp32 ones (dot-product instructions or tiles)."""
        return self.amx_bf16 or self.avx512_bf16


def parse_cpu_features(cpuinfo: str, max_isa: str | None) -> CpuFeatures:
    """Features from /proc/cpuinfo's flags, without those above the oneDNN cap ``max_isa`` (None: no cap)."""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    cap = _ISA_ORDER.index(max_isa.upper()) if max_isa and max_isa.upper() in _ISA_ORDER else len(_ISA_ORDER)
    allowed = {flag: flag in flags and _ISA_ORDER.index(isa) <= cap for flag, isa in _LOWEST_ISA_FOR.items()}
    return CpuFeatures(**allowed)


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's features, read once per process (retrieval asks for every question). AMX counts only where
    the kernel grants this process the tile state, as oneDNN and ONNX Runtime ask it to (a hypervisor, a
    container's seccomp policy or ``benchmarks/deny_amx.py`` may refuse it)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return CpuFeatures()
    features = parse_cpu_features(cpuinfo, os.environ.get("ONEDNN_MAX_CPU_ISA"))
    if features.amx_bf16 and not _amx_granted():
        features = dataclasses.replace(features, amx_bf16=False)
    return features


def _amx_granted() -> bool:
    """Ask Linux for the AMX tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    arch_prctl, request_permission, tile_data = 158, 0x1023, 18
    return ctypes.CDLL(None).syscall(arch_prctl, request_permission, tile_data) == 0


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) means the GPU when there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def int8_available() -> bool:
    """ONNX Runtime, which runs the int8 models, is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def inference_precision(device: torch.device) -> str:
    """What ``auto`` means for a reader on ``device``: bf16 on CUDA with bf16 (else fp16) and on CPUs with AMX;
    int8 on CPUs with int8 dot products (AVX-512 VNNI) but no AMX, when ONNX Runtime is installed; fp32 elsewhere.

    Alone int8's top answer over 20 passages differs from fp32's on some questions, so the int8 reader reads the
    windows holding close calls again in fp32, through ONNX Runtime as well (``core``;
    ``ReadOptions.rescore_margin``), and answers as fp32 does: 2.65x as fast as torch's fp32 on a 2-core AMD Zen 4
    (``benchmarks/reader_speed.py``, docs/performance.md). CPUs with AVX2 only are left in fp32:
    with oneDNN and MKL capped at AVX2, int8 with the re-reading was only 1.14x fp32, and that with ONNX Runtime's
    kernels still using VNNI, which such a CPU lacks (docs/performance.md)."""
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.type != "cpu":
        return "float32"
    features = cpu_features()
    if features.amx_bf16:
        return "bfloat16"
    if features.int8_dot_products and int8_available():
        return "int8"
    return "float32"


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``auto`` (or None) resolved by ``inference_precision``; any other name checked, int8 on CPUs only."""
    if precision in (None, "auto"):
        return inference_precision(device)
    if precision not in PRECISIONS:
        raise ValueError(f"dtype must be auto or one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"dtype int8 runs on the CPU only, not on {device}; use bfloat16 or float16 there")
    return precision


def reading_batch_size(device: torch.device) -> int:
    """Windows per forward pass when reading on ``device`` (``ReadOptions.batch_size`` unset): 64 on a GPU, which
    needs width; on a CPU a few, where a batch costs its padded tokens and small length-sorted batches carry
    little padding: 8 with AMX, 4 without.

    Measured (docs/performance.md): on a 2-core Xeon with AMX, 8 was fastest in ``benchmarks/reader_speed.py``;
    on a 2-core AMD Zen 4 (no AMX), ``benchmarks/reader_batch.py`` read 1.09-1.17x as fast at 4 as at 8 in fp32,
    bf16 and int8 with close calls re-read in fp32."""
    if device.type == "cuda":
        return 64
    return 8 if device.type == "cpu" and cpu_features().amx_bf16 else 4


#: Forces the embedding precision on CPUs (float32, bfloat16, int8; auto or unset: ``embedding_precision_for``
#: decides), to measure one precision on a machine whose policy picks another.
EMBED_PRECISION_VARIABLE = "CORPUSQA_EMBED_PRECISION"
#: What a sentence embedder can run in: torch in fp32, torch under bf16 autocast, or int8 through ONNX Runtime.
EMBEDDING_PRECISIONS = ("float32", "bfloat16", "int8")


def embedding_precision_for(device: torch.device) -> str:
    """The precision sentence embedding runs in on ``device``: on CPUs with AMX bfloat16
    (autocast); on other CPUs int8 (ONNX Runtime) when it is installed, else float32. ``$CORPUSQA_EMBED_PRECISION``
    (float32, bfloat16 or int8) overrides the CPU's answer; auto or unset leaves it. On a GPU the model runs as
    loaded: float32.

    int8 is for the passages of an index run only (``indexing/int8_embedder.py``); a question, one short
    input, is embedded in fp32 wherever passages are embedded in int8, so ``embeds_in_bf16`` is False there."""
    forced = os.environ.get(EMBED_PRECISION_VARIABLE, "").strip().lower() or "auto"
    if forced != "auto" and forced not in EMBEDDING_PRECISIONS:
        raise ValueError(
            f"{EMBED_PRECISION_VARIABLE} must be auto or one of {', '.join(EMBEDDING_PRECISIONS)}, not {forced!r}"
        )
    if device.type != "cpu":
        return "float32"
    if forced != "auto":
        return forced
    if cpu_features().amx_bf16:
        return "bfloat16"
    return "int8" if int8_available() else "float32"


def embeds_in_bf16(device: torch.device) -> bool:
    """Whether sentence embedding (passages and questions) on ``device`` runs under bf16 autocast:
    ``embedding_precision_for`` says bfloat16 (CPUs with AMX, unless overridden)."""
    return embedding_precision_for(device) == "bfloat16"


def training_autocast_dtype(device: torch.device, mixed_precision: bool = True) -> torch.dtype | None:
    """Autocast dtype for training: bf16 on CUDA with bf16 and on CPUs with bf16 arithmetic, fp16 on older GPUs,
    None (fp32) otherwise."""
    if not mixed_precision:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_features().bf16_arithmetic else None


#: oneDNN's limit on the compiled kernels it keeps (its default is 1,024).
KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: The limit training on a CPU runs under unless the user sets one.
TRAINING_KERNEL_CACHE = 32


def bound_training_kernel_cache(device: torch.device) -> None:
    """Before training on the CPU: cap oneDNN's kernel cache at ``TRAINING_KERNEL_CACHE`` unless
    ``$ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is set.

    Training batches come in many widths (each padded to its own longest window), and oneDNN keeps a kernel, with
    its scratch memory, for every shape it has met (1,024 by default). Over the 21 widths 64-384, MiniLM's steps
    peaked at 7.6 GB with the cap against 9.0 GB without, at the same seconds per step
    (benchmarks/train_memory.py). oneDNN reads the variable when it makes its first kernel, so this must run
    before the process's first CPU matmul; afterwards it changes nothing."""
    if device.type == "cpu":
        os.environ.setdefault(KERNEL_CACHE_VARIABLE, str(TRAINING_KERNEL_CACHE))
