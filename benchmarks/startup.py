"""How long `corpusqa` takes to start: `--help`, every command's `--help`, `stats`, and a first `ask` (start-up,
loading the models and answering one question), each as its own process, as a user runs them.

    python benchmarks/startup.py [--repeat 5]

Indexes three short text files into a fresh store first (BM25 and dense). Prints the median wall time of
each command over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTES = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "The Rhine flows from the Swiss Alps to the North Sea.",
    "Ada Lovelace wrote the first program for Charles Babbage's Analytical Engine.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "corpusqa.pipelines.cli"]
    with tempfile.TemporaryDirectory() as work:
        docs, store = Path(work) / "docs", str(Path(work) / "store")
        docs.mkdir()
        for number, text in enumerate(NOTES):
            (docs / f"note-{number}.txt").write_text(text, encoding="utf-8")
        subprocess.run([*cli, "index", str(docs), "--store", store, "--quiet"], check=True, capture_output=True)
        runs = {
            "corpusqa --help": ["--help"],
            "corpusqa ask --help": ["ask", "--help"],
            "corpusqa serve --help": ["serve", "--help"],
            "corpusqa stats": ["stats", "--store", store],
            "corpusqa ask (bm25, first question)": ["ask", "When was the tower completed?", "--store", store, "--retriever", "bm25"],
            "corpusqa ask (hybrid, first question)": ["ask", "When was the tower completed?", "--store", store],
        }
        print(f"median of {args.repeat} runs, each a new process\n")
        print("| command | seconds |")
        print("|---|---:|")
        for name, argv in runs.items():
            print(f"| `{name}` | {statistics.median(timed([*cli, *argv]) for _ in range(args.repeat)):.2f} |")


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
