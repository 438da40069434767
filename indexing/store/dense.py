"""The dense index: FAISS inner product over L2-normalised embeddings, so scores are cosine similarities.

Exact ``IndexFlatIP`` up to ``FLAT_LIMIT`` vectors, ``IndexHNSWFlat`` (inner product, M=32,
efConstruction=80, efSearch=512) above it. Measured on synthetic normalised 384-d vectors, one query
at a time, one thread, median of 200-300 queries, on 2 cores shared with a training job (its quieter
and its busiest, memory-bound moments); "embedding-like" vectors are 2000 topics in a 64-d latent
space mapped into 384-d plus noise (sentence embeddings have such low intrinsic dimension), "uniform"
ones are random on the sphere (no neighbourhoods: the worst case for any graph; efConstruction=64):

    vectors   flat: quieter / busiest   HNSW ef=128   recall@10, ef=64 / ef=128
                                                      embedding-like    uniform
     10 000       0.6 /  1.0 ms         0.4 ms        0.991 / 0.999     0.62 / 0.81
     50 000    4 - 10 / 41   ms         0.7 - 1.0 ms  0.999 / 1.000     0.26 / 0.40
    100 000   11 - 15 / 82   ms         0.7 - 1.0 ms  0.999 / 1.000
    200 000        25        ms         0.7 ms

Adding to HNSW costs 0.3-0.6 ms of one core per vector (more as the graph grows), 3-10x that at the
busiest. Up to 50 000 vectors exact search stays within ~10 ms, a fraction of reading the passages,
and needs no build; above, flat search grows linearly, and several-fold when memory bandwidth is
shared, while HNSW stays at ~1 ms with recall@10 of 0.999 on embedding-like vectors. Hence
``FLAT_LIMIT = 50_000``.

efSearch: those vectors were too easy for the graph. On benchmarks/store_scaling.py's vectors (real
MiniLM neighbourhoods filled densely, real question vectors), recall@10 at efSearch 128 fell from 0.992
at 100k to 0.962 at 300k and 0.906 at a million. At a million (``benchmarks/hnsw_ef_sweep.py`` on that
store: ``dense()`` one call at a time, the passages read from SQLite, quiet machine):

    efSearch      64     128    256    384    512    768
    recall@10     0.853  0.906  0.954  0.970  0.975  0.994
    p50 ms        1.8    1.5    1.9    2.2    2.6    3.4

A dense query is ~2% of a hybrid one (~28 ms at a million, mostly embedding the question and BM25), so
``HNSW_EF_SEARCH = 512`` buys recall for about a millisecond.

Vectors added to a graph loaded from disk go to a small exact index beside it (``recent``) until the
graph is saved: FAISS keeps the graph's vectors in one array sized to fit, so the first vector added
after loading copies all of it into one twice the size (at a million, 4 s and a 1.5 GB peak in every
process that catches up with a one-file commit).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from .rows import positions_mask

FLAT_LIMIT = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 512
#: An HNSW graph cannot delete: deleted vectors stay as tombstones until they are this share of it,
#: then the index is rebuilt from SQLite.
TOMBSTONE_LIMIT = 0.2


@contextmanager
def _one_thread() -> Iterator[None]:
    """One query gains nothing from OpenMP threads, and on a busy machine waiting for them costs tens of
    milliseconds (a 20k flat search: 35 ms with 2 threads, 1.3 ms with 1, while a training job ran)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.array(vectors, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


class DenseIndex:
    """Vectors by position; ``rows[position]`` is the SQLite row, ``deleted[position]`` a tombstone.

    ``through``: the last SQLite row that existed when the index was last brought up to date (rows above
    it are new to the index). Beside an HNSW graph, ``recent`` holds the vectors added since it was
    loaded or built, at the positions after the graph's; ``save`` folds them into the graph."""

    def __init__(self, index: faiss.Index | None, rows: np.ndarray, deleted: np.ndarray, through: int):
        self.index = index  # None while no passage has an embedding
        self.recent: faiss.IndexFlatIP | None = None
        self.rows = rows
        self.deleted = deleted
        self.through = through

    @classmethod
    def build(cls, rows: np.ndarray, vectors: np.ndarray, through: int) -> DenseIndex:
        if not len(rows):
            return cls(None, rows, np.zeros(0, dtype=bool), through)
        dim = vectors.shape[1]
        if len(rows) <= FLAT_LIMIT:
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(normalise(vectors))
        return cls(index, rows, np.zeros(len(rows), dtype=bool), through)

    @property
    def kind(self) -> str | None:
        return None if self.index is None else "hnsw" if isinstance(self.index, faiss.IndexHNSW) else "flat"

    @property
    def dim(self) -> int | None:
        return None if self.index is None else self.index.d

    @property
    def size(self) -> int:
        """Live vectors."""
        return int(len(self.rows) - self.deleted.sum())

    def absorbs(self, removed: np.ndarray, added: int) -> bool:
        """Whether ``update`` may take this change, or the index should be rebuilt instead: it has no
        vectors yet, a flat index would outgrow ``FLAT_LIMIT``, or HNSW tombstones would pass
        ``TOMBSTONE_LIMIT``."""
        if self.index is None:
            return not added
        gone = int((positions_mask(self.rows, removed) & ~self.deleted).sum())
        if self.kind == "flat":
            return self.size - gone + added <= FLAT_LIMIT
        return self.deleted.sum() + gone <= TOMBSTONE_LIMIT * (len(self.rows) + added)

    def update(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        """Apply a committed change that ``absorbs``: rows removed, and rows added (above all current ones,
        so ``rows`` stays ascending)."""
        if self.index is None:
            return
        gone = np.flatnonzero(positions_mask(self.rows, removed) & ~self.deleted)
        if self.kind == "flat":
            self.index.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
            self.rows, self.deleted = np.delete(self.rows, gone), np.delete(self.deleted, gone)
        else:
            self.deleted[gone] = True
        if len(added):
            if self.kind == "flat":
                self.index.add(normalise(vectors))
            else:
                if self.recent is None:
                    self.recent = faiss.IndexFlatIP(self.index.d)
                self.recent.add(normalise(vectors))
            self.rows = np.concatenate([self.rows, added])
            self.deleted = np.concatenate([self.deleted, np.zeros(len(added), dtype=bool)])

    def search(self, query: np.ndarray, top_k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """(row, cosine similarity) of the ``top_k`` nearest live vectors whose rows are in ``allowed``
        (all when None), best first. Exact, except for HNSW over more than ``FLAT_LIMIT`` candidates."""
        if self.index is None or top_k < 1:
            return []
        candidates = ~self.deleted if allowed is None else positions_mask(self.rows, allowed) & ~self.deleted
        count = int(candidates.sum())
        if count == 0:
            return []
        graph = self.kind == "hnsw" and count > FLAT_LIMIT
        if graph:  # widen the beam as the selector thins the graph out
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, top_k) * len(candidates) // count)
            parts = [(self.index, params)]
        else:  # exact, also under a graph: a graph search among few allowed vectors misses many of them
            index = self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)
            parts = [(index, faiss.SearchParameters())]
        if self.recent is not None:
            parts.append((self.recent, faiss.SearchParameters()))
        hits, offset = [], 0
        with _one_thread():
            for index, params in parts:
                hits += _search(index, normalise(query), top_k, candidates[offset:offset + index.ntotal], params, offset)
                offset += index.ntotal
        hits.sort(key=lambda hit: -hit[1])
        return [(int(self.rows[position]), score) for position, score in hits[:top_k]]

    def save(self, folder: Path) -> None:
        """Write the index, folding ``recent`` into the graph first."""
        if self.recent is not None:
            self.index.add(self.recent.reconstruct_n(0, self.recent.ntotal))
            self.recent = None
        np.save(folder / "rows.npy", self.rows)
        np.save(folder / "deleted.npy", self.deleted)
        (folder / "state.json").write_text(json.dumps({"through": self.through}))
        if self.index is not None:
            faiss.write_index(self.index, str(folder / "dense.faiss"))

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        rows, deleted = np.load(folder / "rows.npy"), np.load(folder / "deleted.npy")
        through = json.loads((folder / "state.json").read_text())["through"]
        index = faiss.read_index(str(folder / "dense.faiss")) if len(rows) else None
        if len(deleted) != len(rows) or (index is not None and index.ntotal != len(rows)):
            raise ValueError(f"dense index in {folder} does not match its row list")
        return cls(index, rows, deleted, through)


def _search(
    index: faiss.Index, query: np.ndarray, top_k: int, allowed: np.ndarray, params: faiss.SearchParameters, offset: int
) -> list[tuple[int, float]]:
    """(position + ``offset``, score) of the ``top_k`` best of ``index``'s vectors where ``allowed``."""
    count = int(allowed.sum())
    if count == 0:
        return []
    bitmap = np.packbits(allowed, bitorder="little")  # kept alive: the selector points into it
    if count < len(allowed):
        params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
    scores, positions = index.search(query, min(top_k, count), params=params)
    return [(offset + int(p), float(s)) for p, s in zip(positions[0], scores[0]) if p >= 0]
