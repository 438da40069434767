"""benchmarks/gpu_check.sh refuses a malformed size or budget before it starts anything."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("setting", "value"), [("GPU_CHECK_BUDGET", "8min"), ("GPU_CHECK_QUESTIONS", "0"),
                                                ("GPU_CHECK_FAISS_VECTORS", "1e6")])
def test_a_setting_that_is_not_a_positive_whole_number_is_refused_by_name(setting, value):
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, setting: value})
    assert done.returncode == 2
    assert f"{setting} must be a positive whole number, not '{value}'" in done.stderr
