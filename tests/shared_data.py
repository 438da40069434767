"""SQuAD data for the tests, which the product never reads.

* ``SAMPLE_DIR``: a small sample committed with the tests (a few dev-v1.1 and dev-v2.0 articles, cut by
  scripts/make_squad_sample.py), so every clone runs every test that needs SQuAD-shaped data.
* ``SQUAD_DIR``: the full SQuAD files beside the checkout (``../shared/squad``, as CI has them, or
  ``$CORPUSQA_SQUAD_DIR``), for the full-size checks; ``full_squad`` skips a test, saying why, without them.
"""

import os
from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "squad"
SQUAD_DIR = Path(os.environ.get("CORPUSQA_SQUAD_DIR") or Path(__file__).resolve().parents[2] / "shared" / "squad")


def full_squad(name: str) -> Path:
    """The full-size SQuAD file ``name`` (a path under ``SQUAD_DIR``), or skip the calling test."""
    path = SQUAD_DIR / name
    if not path.is_file():
        pytest.skip(f"full-size SQuAD data not found ({path}; set CORPUSQA_SQUAD_DIR): a full-size check")
    return path
