"""The search page in a real browser: `corpusqa ui` on a free port, headless Chromium typing a question.

Runs `scripts/browser_check.py`'s check, so the script the README names stays working. Skipped, with the
reason, where no Chromium is installed (`apt-get install chromium`) or Playwright is missing.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from corpus_fixtures import good_corpus
from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store import EmbeddedDocumentStore

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "browser_check.py"
_spec = importlib.util.spec_from_file_location("browser_check", _SCRIPT)
browser_check = sys.modules["browser_check"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_check)

if browser_check.chromium_binary() is None:
    pytest.skip("no Chromium binary: apt-get install chromium (or set CORPUSQA_CHROMIUM)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")

OXYGEN_15 = "What is the half-life of Oxygen-15?"


def test_an_analyst_types_a_question_and_reads_the_marked_answer_in_light_and_dark_themes(tmp_path):
    good_corpus(tmp_path / "docs")
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        index_paths([tmp_path / "docs"], store, embed=False, progress=False)  # BM25 alone: no embedder to load
    with browser_check.running_ui(tmp_path / "store", "--no-answer-threshold", "0") as url:
        light = browser_check.ask_in_browser(url, OXYGEN_15, screenshot=tmp_path / "light.png")
        dark = browser_check.ask_in_browser(url, OXYGEN_15, dark=True)
    assert light.answer == dark.answer == "122 seconds"
    assert light.page_luminance > 0.8 and dark.page_luminance < 0.1  # the themes really differ
    assert min(light.contrast, dark.contrast) >= browser_check.MIN_CONTRAST
    assert (tmp_path / "light.png").stat().st_size > 10_000


def test_the_whole_passage_opens_scrolled_to_its_answer(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    items = [f"Shelf {number}: spare cables" for number in range(1, 26)]  # one passage, 26 lines tall
    (docs / "inventory.txt").write_text("\n".join([*items, "The master key is kept in the blue cabinet."]) + "\n")
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        index_paths([docs], store, embed=False, progress=False)
    with browser_check.running_ui(tmp_path / "store", "--no-answer-threshold", "0") as url:
        seen = browser_check.whole_passage_in_browser(url, "Where is the master key kept?")
    assert seen == {"overflows": True, "in_view": True}, "the answer, on the passage's last line, is in view"
