"""FAISS in three verbs: build from unit vectors, save/load, search (optionally restricted to some items).

Vectors are unit length, so inner product is cosine similarity. Filtered search is always exact: FAISS's graph
indexes with an ID selector silently lose recall when the allowed items sit far from the query.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

DEFAULT_FACTORY = "Flat"


def build(vectors: np.ndarray, factory: str = DEFAULT_FACTORY) -> faiss.Index:
    """An inner-product index from FAISS's `index_factory` string (e.g. "Flat", "HNSW32", "IVF1024,SQ8")."""
    vectors = _as_matrix(vectors)
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


def save(index: faiss.Index, path: str | Path) -> None:
    faiss.write_index(index, str(path))


def load(path: str | Path) -> faiss.Index:
    return faiss.read_index(str(path))


def describe(index: faiss.Index) -> str:
    """The concrete FAISS class, e.g. IndexFlatIP or IndexHNSWFlat."""
    return type(faiss.downcast_index(index)).__name__


def search(index: faiss.Index, queries: np.ndarray, k: int,
           allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, row ids) per query; rows past the catalog's end come back as id -1.

    `allowed` is a sorted array of row ids the results must come from (a metadata filter).
    """
    queries = _as_matrix(queries)
    k = max(1, min(int(k), index.ntotal))
    if allowed is None:
        return index.search(queries, k)
    if len(allowed) == 0:
        return (np.full((len(queries), k), -np.inf, dtype=np.float32), np.full((len(queries), k), -1, dtype=np.int64))
    flat = faiss.downcast_index(index)
    if isinstance(flat, faiss.IndexFlat):
        bitmap = np.zeros((index.ntotal + 7) // 8, dtype=np.uint8)
        np.bitwise_or.at(bitmap, allowed >> 3, (1 << (allowed & 7)).astype(np.uint8))
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(bitmap)))
        return index.search(queries, k, params=params)
    # Approximate indexes: exact scores over the allowed rows' stored vectors.
    subset = reconstruct(index, allowed)
    scores = queries @ subset.T
    kk = min(k, len(allowed))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    out_scores = np.take_along_axis(scores, top, axis=1).astype(np.float32)
    out_ids = allowed[top].astype(np.int64)
    if kk < k:
        pad = k - kk
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
    return out_scores, out_ids


def reconstruct(index: faiss.Index, rows: np.ndarray) -> np.ndarray:
    """The stored vectors of these rows (exact for Flat/HNSW-Flat, quantised for SQ/PQ)."""
    rows = np.asarray(rows, dtype=np.int64)
    try:
        return index.reconstruct_batch(rows)
    except RuntimeError:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is None:
            raise
        ivf.make_direct_map()
        return index.reconstruct_batch(rows)


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    return np.ascontiguousarray(vectors)
