"""Split a SQuAD training file by article: most articles to train a reader on, a few held out for tuning it.

    python scripts/split_squad.py --data train-v1.1.json --held-out-share 0.05 \
        --train-output runs/train-part.json --held-out-output runs/held-out.json

A reader is more confident on questions it was trained on than on new ones, so a no-answer threshold tuned on
its own training questions abstains more, and loses more right answers, on users' questions than it did in
tuning. Tuning on articles the reader never saw (`corpusqa tune --questions-from held-out.json`) measures the
margins it gives new questions. Articles are chosen by a hash of their title, so the split does not
depend on the file's order, and the same title always falls on the same side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def held_out(title: str, share: float) -> bool:
    """Whether the article ``title`` is held out: its title's hash falls in the first ``share`` of the range."""
    value = int.from_bytes(hashlib.sha256(title.encode()).digest()[:8], "big")
    return value < share * 2**64


def split(data: dict, share: float) -> tuple[dict, dict]:
    """(articles to train on, articles held out), each a SQuAD file of the same version."""
    keep = [article for article in data["data"] if not held_out(article["title"], share)]
    hold = [article for article in data["data"] if held_out(article["title"], share)]
    return {"version": data["version"], "data": keep}, {"version": data["version"], "data": hold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SQuAD-format training file")
    parser.add_argument("--held-out-share", type=float, default=0.05, help="share of articles held out")
    parser.add_argument("--train-output", type=Path, required=True)
    parser.add_argument("--held-out-output", type=Path, required=True)
    args = parser.parse_args()
    if not 0 < args.held_out_share < 1:
        raise SystemExit(f"--held-out-share: {args.held_out_share} is not between 0 and 1")
    train, hold = split(json.loads(args.data.read_text(encoding="utf-8")), args.held_out_share)
    for part, path in ((train, args.train_output), (hold, args.held_out_output)):
        path.write_text(json.dumps(part), encoding="utf-8")
        questions = sum(len(p["qas"]) for a in part["data"] for p in a["paragraphs"])
        print(f"{path}: {len(part['data'])} articles, {questions} questions")


if __name__ == "__main__":
    main()
