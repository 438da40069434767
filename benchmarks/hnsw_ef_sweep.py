"""Recall@10 and latency of the store's dense search against HNSW efSearch, on a store grown by
store_scaling.py (its exact top 10 per question is kept beside the store).

    python benchmarks/store_scaling.py --sizes 20000,100000,300000,1000000 --out runs/store-scaling
    python benchmarks/hnsw_ef_sweep.py runs/store-scaling [--ef 64,128,256,384,512,768]

Each row: ``store.dense(question_vector, 10)`` one call at a time for store_scaling's questions (the
passages read from SQLite, as in every query), efSearch set through ``dense.HNSW_EF_SEARCH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from store_scaling import TOP_K, ExactTopK, _recall, _timed

from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.indexing.store import dense as dense_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="store_scaling.py's --out folder")
    parser.add_argument("--ef", default="64,128,256,384,512,768", help="efSearch values, comma-separated")
    args = parser.parse_args()
    with np.load(args.work / "queries.npz") as queries:
        vectors = queries["vectors"]
    exact = ExactTopK(args.work, vectors)
    with EmbeddedDocumentStore(args.work / "store") as store:
        store.dense(vectors[0], TOP_K)  # loads the index
        print(f"{store.stats()['passages']:,} passages, {store.stats()['dense_index']}\n")
        print(f"{'efSearch':>8} {'recall@10':>10} {'p50 ms':>8} {'p95 ms':>8}")
        for ef in (int(value) for value in args.ef.split(",")):
            dense_module.HNSW_EF_SEARCH = ef
            seconds, found = _timed(lambda vector: store.dense(vector, TOP_K), vectors)
            p50, p95 = (1000 * float(np.percentile(seconds, q)) for q in (50, 95))
            print(f"{ef:>8} {_recall(found, exact.positions):>10.3f} {p50:>8.2f} {p95:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
