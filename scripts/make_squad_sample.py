"""Cut the small SQuAD sample that the tests read on any clone (tests/data/squad/) from the full dev sets.

    python scripts/make_squad_sample.py --squad ../shared/squad --output tests/data/squad

Each article keeps its first paragraphs, with every question of theirs, in the dev set's order: the
paragraphs the test corpus is built from (tests/corpus_fixtures.py) and enough questions for a reader
check (Super_Bowl_50) and a SQuAD 2.0 evaluation (Normans, answerable and unanswerable questions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: dev-v1.1 article -> paragraphs kept
V1_ARTICLES = {
    "Super_Bowl_50": 6,
    "Steam_engine": 6,
    "Oxygen": 3,
    "Amazon_rainforest": 3,
    "Apollo_program": 3,
    "Geology": 3,
    "Rhine": 4,
}
#: dev-v2.0 article -> paragraphs kept
V2_ARTICLES = {"Normans": 8}


def cut(data: dict, articles: dict[str, int]) -> dict:
    """The articles named, in the file's order, each cut to its first paragraphs."""
    kept = [
        {**article, "paragraphs": article["paragraphs"][: articles[article["title"]]]}
        for article in data["data"]
        if article["title"] in articles
    ]
    missing = set(articles) - {article["title"] for article in kept}
    if missing:
        raise SystemExit(f"articles not found: {', '.join(sorted(missing))}")
    return {"version": data["version"], "data": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, required=True, help="folder holding dev-v1.1.json and dev-v2.0.json")
    parser.add_argument("--output", type=Path, required=True, help="folder for the sample files")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for name, articles in [("dev-v1.1.json", V1_ARTICLES), ("dev-v2.0.json", V2_ARTICLES)]:
        data = json.loads((args.squad / name).read_text(encoding="utf-8"))
        sample = cut(data, articles)
        (args.output / name).write_text(json.dumps(sample, ensure_ascii=False) + "\n", encoding="utf-8")
        questions = sum(len(p["qas"]) for a in sample["data"] for p in a["paragraphs"])
        print(f"{args.output / name}: {len(sample['data'])} articles, {questions} questions")


if __name__ == "__main__":
    main()
