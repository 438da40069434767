import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:  # only matters with --import-mode=importlib
    sys.path.insert(0, _TESTS)

# Tests never reach a model hub: everything they load is built locally or installed from PyPI.
os.environ["HF_HUB_OFFLINE"] = "1"
# Nor Haystack's usage telemetry, which the CLI turns off only if haystack is not imported before it.
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
# Quantized readers are cached per test session, never in the user's cache, and removed after it.
os.environ["CORPUSQA_CACHE"] = tempfile.mkdtemp(prefix="corpusqa-test-cache-")
atexit.register(shutil.rmtree, os.environ["CORPUSQA_CACHE"], ignore_errors=True)

from tiny_models import ARCHITECTURES, build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """arch -> folder of a tiny random-weight QA model (seed 0), built once per session."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(arch, root / arch) for arch in ARCHITECTURES}
