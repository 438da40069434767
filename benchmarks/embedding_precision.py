"""The default embedder in fp32, under bf16 autocast (what ``indexing.embedding.embedding_precision``
turns on for CPUs with AMX) and with int8 weights through ONNX Runtime (``indexing/int8_embedder.py``, what
index runs use on CPUs without AMX): time to embed SQuAD dev's paragraphs, each set of vectors against fp32's,
and whether retrieval finds the same paragraphs.

    python benchmarks/embedding_precision.py [--squad ../shared/squad/dev-v1.1.json] [--questions 1000]
        [--paragraphs N]

Recall@k: a question's own paragraph is among the k paragraphs nearest to it (one question per paragraph,
a seeded sample). bf16 pays most on CPUs with AMX; without AMX it was slower than fp32 on a Xeon and faster on
a Zen 4, and int8 faster than both (docs/performance.md). In the int8 row
only the passages are int8; questions are embedded in fp32, as queries are wherever passages are int8. Its
seconds leave out the one-time export and quantization (cached: ``$CORPUSQA_CACHE/int8``). To measure int8 as
on a CPU without AMX on one with it, run under ``benchmarks/deny_amx.py`` (ONNX Runtime uses AMX int8 tiles
wherever the kernel grants them). ``--paragraphs N``: only the first N paragraphs (and questions on them), for
a quick check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from corpusqa.indexing.embedding import DEFAULT_EMBEDDER, local_model_path
from corpusqa.indexing.int8_embedder import int8_sentence_transformer

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "squad" / "dev-v1.1.json"
KS = (1, 5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=SQUAD_DEV)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--paragraphs", type=int, default=None, help="only the first N paragraphs (default: all)")
    args = parser.parse_args()
    paragraphs, asked = [], []
    for article in json.loads(args.squad.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            asked.append((paragraph["qas"][0]["question"], len(paragraphs)))
            paragraphs.append(paragraph["context"])
    if args.paragraphs is not None:
        paragraphs, asked = paragraphs[: args.paragraphs], asked[: args.paragraphs]
    picked = np.random.default_rng(0).choice(len(asked), min(args.questions, len(asked)), replace=False)
    questions, gold = [asked[i][0] for i in picked], np.array([asked[i][1] for i in picked])
    model = SentenceTransformer(local_model_path(DEFAULT_EMBEDDER), device="cpu")
    int8_model = int8_sentence_transformer(model, DEFAULT_EMBEDDER)  # exported and quantized once, untimed
    print(f"{len(paragraphs):,} paragraphs, {len(questions):,} questions\n")
    print(f"{'precision':>9} {'seconds':>8} {'passages/s':>10}  recall@{'/'.join(map(str, KS))}")
    rows = (
        ("fp32", model, contextlib.nullcontext),
        ("bf16", model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
        ("int8", int8_model, contextlib.nullcontext),
    )
    embedded = {}
    for name, passage_model, precision in rows:
        with torch.inference_mode(), precision():
            started = time.perf_counter()
            passages = passage_model.encode(paragraphs, batch_size=32, normalize_embeddings=True)
            seconds = time.perf_counter() - started
            queries = model.encode(questions, batch_size=32, normalize_embeddings=True)
        ranked = np.argsort(-(queries @ passages.T), axis=1)
        recall = [float(np.mean([g in row[:k] for g, row in zip(gold, ranked)])) for k in KS]
        embedded[name] = passages
        print(f"{name:>9} {seconds:>8.1f} {len(paragraphs) / seconds:>10.0f}  " + " / ".join(f"{100 * r:.1f}" for r in recall))
    print()
    for name in ("bf16", "int8"):
        cosine = (embedded["fp32"] * embedded[name]).sum(axis=1)
        print(f"cosine of each paragraph's {name} vector to its fp32 one: min {cosine.min():.5f}, mean {cosine.mean():.5f}")


if __name__ == "__main__":
    main()
