"""FAISS exact inner-product search on a GPU against the CPU: the same vectors, the same queries, the same k.

    python benchmarks/faiss_gpu.py [--vectors 1000000] [--dim 384] [--queries 1000] [--k 10] [--json out.json]
    python benchmarks/faiss_gpu.py --cpu-only --vectors 20000 --queries 100     (no GPU: checks the script itself)

Vectors and queries are seeded random float32, normalised as corpusqa's embeddings are, in a flat
inner-product index (IndexFlatIP: exact search, the baseline every approximate index is measured against).
Each search is timed after a small warm-up search: the GPU's as the median of ``--repeats`` runs, the CPU's
(some seconds at the default size) once unless ``--cpu-repeats`` says otherwise. Exact search
should return the same neighbours on both devices; the overlap of the two top-k lists is printed as a check.
Needs faiss-gpu (``faiss.get_num_gpus() > 0``) unless ``--cpu-only``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import faiss
import numpy as np


def random_unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def timed_search(index, queries: np.ndarray, k: int, repeats: int) -> tuple[float, np.ndarray]:
    index.search(queries[:10], k)  # warm-up: allocations, kernels, thread pools
    times, ids = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        _, ids = index.search(queries, k)
        times.append(time.perf_counter() - began)
    return statistics.median(times), ids


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the k neighbours two searches agree on, averaged over the queries, in percent."""
    return 100.0 * float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a.tolist(), b.tolist())]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed GPU searches (median)")
    parser.add_argument("--cpu-repeats", type=int, default=1, help="timed CPU searches (median)")
    parser.add_argument("--gpu", type=int, default=0, help="which GPU (default 0)")
    parser.add_argument("--cpu-only", action="store_true", help="time the CPU only (to check the script without a GPU)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not args.cpu_only and gpus == 0:
        raise SystemExit("faiss sees no GPU: install faiss-gpu (faiss.get_num_gpus() is 0), or pass --cpu-only")

    began = time.perf_counter()
    vectors = random_unit_vectors(args.vectors, args.dim, seed=0)
    queries = random_unit_vectors(args.queries, args.dim, seed=1)
    data_seconds = time.perf_counter() - began

    began = time.perf_counter()
    cpu_index = faiss.IndexFlatIP(args.dim)
    cpu_index.add(vectors)
    cpu_build = time.perf_counter() - began
    cpu_seconds, cpu_ids = timed_search(cpu_index, queries, args.k, args.cpu_repeats)

    result = {
        "vectors": args.vectors, "dim": args.dim, "queries": args.queries, "k": args.k,
        "repeats": args.repeats, "cpu_repeats": args.cpu_repeats,
        "faiss": faiss.__version__, "cpu_threads": faiss.omp_get_max_threads(), "data_seconds": data_seconds,
        "cpu_build_seconds": cpu_build, "cpu_seconds": cpu_seconds,
        "gpu_build_seconds": None, "gpu_seconds": None, "speedup": None, "top_k_overlap_pct": None,
    }
    if not args.cpu_only:
        resources = faiss.StandardGpuResources()
        began = time.perf_counter()
        gpu_index = faiss.index_cpu_to_gpu(resources, args.gpu, cpu_index)
        result["gpu_build_seconds"] = time.perf_counter() - began
        gpu_seconds, gpu_ids = timed_search(gpu_index, queries, args.k, args.repeats)
        result.update(gpu_seconds=gpu_seconds, speedup=cpu_seconds / gpu_seconds,
                      top_k_overlap_pct=overlap(gpu_ids, cpu_ids))

    print(f"flat inner product, {args.vectors:,} x {args.dim} float32, {args.queries:,} queries, k={args.k}, "
          f"faiss {faiss.__version__}")
    print(f"CPU ({result['cpu_threads']} threads): {cpu_seconds:.4f} s to search (median of {args.cpu_repeats}), "
          f"{cpu_build:.2f} s to add")
    if not args.cpu_only:
        print(f"GPU {args.gpu}: {result['gpu_seconds']:.4f} s to search (median of {args.repeats}; "
              f"{result['speedup']:.1f}x the CPU), "
              f"{result['gpu_build_seconds']:.2f} s to copy the index; top-{args.k} overlap with the CPU's "
              f"{result['top_k_overlap_pct']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
