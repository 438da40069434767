"""Browser check of the search page: start `corpusqa ui` on a free port, ask a question in headless Chromium
(Debian's `chromium` package, driven by Playwright; no browser is downloaded), wait for the answer, check that
it is marked and legible in the light and the dark theme, and save screenshots.

    python scripts/browser_check.py --store DIR --question "..." --expect "..." [--screenshot docs/ui-screenshot.png]

`tests/test_ui_browser.py` runs this check on the test corpus. The browser is `$CORPUSQA_CHROMIUM`, else
the first of chromium, chromium-browser, google-chrome on the PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: WCAG AA for body text: what the marked answer must reach against the background it is drawn on.
MIN_CONTRAST = 4.5

# The marked answer's text colour against its own translucent background laid over the first opaque
# background behind it, as WCAG 2 defines contrast.
_CONTRAST_JS = """mark => {
  const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  let behind = [255, 255, 255, 1];
  for (let node = mark.parentElement; node; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour[3] > 0) { behind = colour; break; }
  }
  const own = rgba(getComputedStyle(mark).backgroundColor);
  const ground = [0, 1, 2].map(i => own[i] * own[3] + behind[i] * (1 - own[3]));
  const text = rgba(getComputedStyle(mark).color);
  const luminance = c => {
    const [r, g, b] = c.slice(0, 3).map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [light, dark] = [luminance(text), luminance(ground)].sort((a, b) => b - a);
  return {contrast: (light + 0.05) / (dark + 0.05), page_luminance: luminance(behind)};
}"""


# Whether a passage's scroll box overflows, and whether it shows all of its marked answer.
_MARK_IN_VIEW_JS = """box => {
  const mark = box.querySelector("mark"), top = mark.offsetTop - box.scrollTop;
  return {overflows: box.scrollHeight > box.clientHeight, in_view: top >= 0 && top + mark.offsetHeight <= box.clientHeight};
}"""


@dataclass(frozen=True)
class Seen:
    """What the browser showed: the first marked answer, its contrast, and how light the page was."""

    answer: str
    contrast: float
    page_luminance: float


def chromium_binary() -> str | None:
    found = (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
    return os.environ.get("CORPUSQA_CHROMIUM") or next((path for path in found if path), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_ui(store: Path, *options: str, timeout_s: float = 300) -> Iterator[str]:
    """`corpusqa ui --store STORE --port FREE OPTIONS...` until the block ends; yields its address once it
    answers its health check. Its own output goes to a log that is printed if it fails to start."""
    port = free_port()
    command = [sys.executable, "-m", "corpusqa.pipelines.cli", "ui", "--store", str(store), "--port", str(port)]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([*command, *options], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(url, process, log, timeout_s)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait_until_healthy(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"corpusqa ui exited with {process.returncode}:\n{log.read()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            if response.read().strip() == b"ok":
                return
        time.sleep(0.5)
    raise TimeoutError(f"corpusqa ui did not answer at {url} within {timeout_s:.0f} s")


def ask_in_browser(
    url: str, question: str, *, dark: bool = False, screenshot: Path | None = None, timeout_s: float = 300
) -> Seen:
    """Type ``question`` into the page as a person would, press Enter and wait for a marked answer."""
    with _asked(url, question, dark, timeout_s) as page:
        mark = page.locator("mark").first
        measured = mark.evaluate(_CONTRAST_JS)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        return Seen(mark.inner_text(), measured["contrast"], measured["page_luminance"])


def whole_passage_in_browser(url: str, question: str, timeout_s: float = 300) -> dict[str, bool]:
    """Ask, open the first answer's whole passage, and say whether the passage overflows its box and whether
    the box shows the marked answer."""
    with _asked(url, question, False, timeout_s) as page:
        page.get_by_text("Whole passage and original file").first.click()
        box = page.locator(".corpusqa-passage").first
        box.wait_for(state="visible")
        page.wait_for_timeout(500)  # the box scrolls once it is laid out
        return box.evaluate(_MARK_IN_VIEW_JS)


@contextlib.contextmanager
def _asked(url: str, question: str, dark: bool, timeout_s: float) -> Iterator[Any]:
    """A headless Chromium page of the search page, ``question`` asked and its first marked answer shown."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_binary()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium, or set CORPUSQA_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            # a laptop's screen; the page follows the system theme, as Streamlit does by default
            page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark" if dark else "light")
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url)
            box = page.get_by_label("Question")
            box.wait_for()
            box.fill(question)
            box.press("Enter")
            page.locator("mark").first.wait_for()
            yield page
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--expect", required=True, help="the answer the page must mark first")
    parser.add_argument("--no-answer-threshold", default="0", help="passed to corpusqa ui (default: 0)")
    parser.add_argument("--screenshot", type=Path, help="save the light-theme page here")
    parser.add_argument("--dark-screenshot", type=Path, help="save the dark-theme page here")
    args = parser.parse_args()
    failures = 0
    with running_ui(args.store, "--no-answer-threshold", args.no_answer_threshold) as url:
        for dark, screenshot in ((False, args.screenshot), (True, args.dark_screenshot)):
            started = time.perf_counter()
            seen = ask_in_browser(url, args.question, dark=dark, screenshot=screenshot)
            good = seen.answer == args.expect and seen.contrast >= MIN_CONTRAST
            failures += not good
            theme = "dark" if dark else "light"
            print(f"{theme:>5}: {'ok' if good else 'FAILED'}  answer {seen.answer!r}, contrast {seen.contrast:.1f}:1, "
                  f"{time.perf_counter() - started:.1f} s{f', saved {screenshot}' if screenshot else ''}")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
