"""The hardware module: which CPU features count, and the precision each kind of machine gets."""

from __future__ import annotations

import pytest
import torch

from corpusqa.reader import hardware
from corpusqa.reader.hardware import CpuFeatures, parse_cpu_features

ZEN4 = "processor : 0\nflags : fpu sse avx avx2 avx512f avx512_vnni avx512_bf16\n"
SAPPHIRE_RAPIDS = "flags : fpu avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
HASWELL = "flags : fpu sse avx avx2 fma\n"


def test_features_come_from_the_cpuinfo_flags():
    assert parse_cpu_features(ZEN4, None) == CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True)
    assert parse_cpu_features(SAPPHIRE_RAPIDS, None).amx_bf16
    assert parse_cpu_features(HASWELL, None) == CpuFeatures(avx2=True)
    assert parse_cpu_features("", None) == CpuFeatures()


@pytest.mark.parametrize(("cap", "expected"), [
    ("AVX2", CpuFeatures(avx2=True)),
    ("avx512_core_vnni", CpuFeatures(avx2=True, avx512_vnni=True)),
    ("AVX512_CORE_BF16", CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True)),
    ("AVX512_CORE_AMX", CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True, amx_bf16=True)),
])
def test_a_onednn_isa_cap_hides_the_features_above_it(cap, expected):
    assert parse_cpu_features(SAPPHIRE_RAPIDS, cap) == expected


@pytest.mark.parametrize(("features", "onnxruntime", "inference", "embedding", "training"), [
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True, amx_bf16=True), True, "bfloat16", "bfloat16",
     torch.bfloat16),
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True), True, "int8", "int8", torch.bfloat16),
    (CpuFeatures(avx2=True, avx512_vnni=True), True, "int8", "int8", None),
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True), False, "float32", "float32", torch.bfloat16),
    (CpuFeatures(avx2=True), True, "float32", "int8", None),
    (CpuFeatures(avx2=True), False, "float32", "float32", None),
])
def test_cpu_precision_policy(monkeypatch, features, onnxruntime, inference, embedding, training):
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    monkeypatch.setattr(hardware, "int8_available", lambda: onnxruntime)
    monkeypatch.delenv(hardware.EMBED_PRECISION_VARIABLE, raising=False)
    cpu = torch.device("cpu")
    assert hardware.inference_precision(cpu) == hardware.resolve_precision("auto", cpu) == inference
    assert hardware.embedding_precision_for(cpu) == embedding  # passages of index runs
    assert hardware.embeds_in_bf16(cpu) == (embedding == "bfloat16")
    assert hardware.training_autocast_dtype(cpu) == training
    assert hardware.training_autocast_dtype(cpu, mixed_precision=False) is None


@pytest.mark.parametrize(("features", "device", "windows"), [
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True, amx_bf16=True), "cpu", 8),
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True), "cpu", 4),
    (CpuFeatures(avx2=True), "cpu", 4),
    (CpuFeatures(avx2=True, amx_bf16=True), "cuda", 64),
])
def test_reading_batches_follow_the_machine(monkeypatch, features, device, windows):
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    assert hardware.reading_batch_size(torch.device(device)) == windows


@pytest.mark.parametrize(("forced", "expected"), [
    ("int8", "int8"), ("float32", "float32"), ("BFloat16", "bfloat16"), ("auto", "bfloat16"), ("", "bfloat16"),
])
def test_the_variable_forces_the_cpu_s_embedding_precision(monkeypatch, forced, expected):
    monkeypatch.setattr(hardware, "cpu_features", lambda: CpuFeatures(avx2=True, amx_bf16=True))
    monkeypatch.setenv(hardware.EMBED_PRECISION_VARIABLE, forced)
    assert hardware.embedding_precision_for(torch.device("cpu")) == expected
    assert hardware.embeds_in_bf16(torch.device("cpu")) == (expected == "bfloat16")
    assert hardware.embedding_precision_for(torch.device("cuda")) == "float32"  # a GPU runs the model as loaded


def test_an_unknown_forced_embedding_precision_is_refused(monkeypatch):
    monkeypatch.setenv(hardware.EMBED_PRECISION_VARIABLE, "int4")
    with pytest.raises(ValueError, match="CORPUSQA_EMBED_PRECISION must be auto or one of float32, bfloat16, int8"):
        hardware.embedding_precision_for(torch.device("cpu"))


def test_a_named_precision_is_kept_and_int8_is_for_cpus_only():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert hardware.resolve_precision("float32", cpu) == "float32"
    assert hardware.resolve_precision("int8", cpu) == "int8"
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        hardware.resolve_precision("int8", gpu)
    with pytest.raises(ValueError, match="dtype must be auto or one of float32, bfloat16, float16, int8"):
        hardware.resolve_precision("float8", cpu)


def test_without_vnni_int8_weights_are_unsigned_so_avx2_sums_cannot_saturate(monkeypatch):
    from corpusqa.reader import onnx_int8

    monkeypatch.setattr(onnx_int8, "cpu_features", lambda: CpuFeatures(avx2=True))
    assert onnx_int8.quantization_settings()["weight_type"] == "QUInt8"
    monkeypatch.setattr(onnx_int8, "cpu_features", lambda: CpuFeatures(avx2=True, avx512_vnni=True))
    assert onnx_int8.quantization_settings()["weight_type"] == "QInt8"


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolve_device("auto") == hardware.resolve_device(None) == torch.device("cpu")
    assert hardware.resolve_device("cpu") == torch.device("cpu")


def test_amx_counts_only_where_the_kernel_grants_the_tile_state(monkeypatch):
    monkeypatch.setattr(hardware.Path, "read_text", lambda self, *a, **k: SAPPHIRE_RAPIDS)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "_amx_granted", lambda: True)
    assert hardware.cpu_features.__wrapped__().amx_bf16
    monkeypatch.setattr(hardware, "_amx_granted", lambda: False)
    refused = hardware.cpu_features.__wrapped__()
    assert not refused.amx_bf16 and refused.avx512_bf16 and refused.int8_dot_products
