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


@pytest.mark.parametrize(("features", "inference", "training"), [
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True, amx_bf16=True), torch.bfloat16, torch.bfloat16),
    (CpuFeatures(avx2=True, avx512_vnni=True, avx512_bf16=True), torch.float32, torch.bfloat16),
    (CpuFeatures(avx2=True), torch.float32, None),
])
def test_cpu_precision_policy(monkeypatch, features, inference, training):
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    cpu = torch.device("cpu")
    assert hardware.inference_dtype(cpu) == inference
    assert hardware.embeds_in_bf16(cpu) == (inference == torch.bfloat16)
    assert hardware.training_autocast_dtype(cpu) == training
    assert hardware.training_autocast_dtype(cpu, mixed_precision=False) is None


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolve_device("auto") == hardware.resolve_device(None) == torch.device("cpu")
    assert hardware.resolve_device("cpu") == torch.device("cpu")
