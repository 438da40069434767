"""Index positions and SQLite rows: both indexes hold their passages by position, in ascending row
order (rows only grow), so a set of rows maps to positions by binary search."""

from __future__ import annotations

import numpy as np


def positions_mask(rows: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Boolean mask over positions: True where ``rows[position]`` is in the sorted array ``allowed``."""
    mask = np.zeros(len(rows), dtype=bool)
    if len(rows) and len(allowed):
        at = np.searchsorted(rows, allowed).clip(max=len(rows) - 1)
        mask[at[rows[at] == allowed]] = True
    return mask


def best(rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """(row, score) of the ``top_k`` highest scores, best first, ties by row; ``rows`` ascending."""
    if len(scores) > top_k:  # keep the top_k-th score and everything at least as good, ties included
        kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        keep = scores >= kth
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:top_k]
    return [(int(rows[p]), float(scores[p])) for p in order]
