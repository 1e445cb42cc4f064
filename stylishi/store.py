"""Where a catalog's vectors live and how they are searched: one small interface, two engines.

`FaissStore` (the default) keeps today's FAISS index inside the app process. `stylishi.milvus_store.MilvusStore`
keeps the vectors in a Milvus collection (Milvus Lite file, standalone or cluster) that many app replicas share.
The search service, the app and the evaluation command use only `VectorStore`; row i is item i of items.parquet
in both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from . import index as faiss_index
from .errors import StyliShiError


class StoreUnavailableError(StyliShiError):
    """The vector store (a Milvus server) cannot be reached right now; the message names its address."""


@dataclass(frozen=True)
class Selection:
    """Which items a filtered search may return, in the two forms the stores need.

    `values`: canonical catalog values per filter column (OR within a column, AND across columns) — a value is
    always one the catalog has, never what a person typed. `rows`: the sorted row ids those values select.
    """

    values: Mapping[str, tuple[str, ...]]
    rows: np.ndarray = field(repr=False)


@runtime_checkable
class VectorStore(Protocol):
    """The vectors of one catalog: row i is item i; vectors are unit length, so inner product is cosine."""

    kind: str

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, selection: Selection | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row ids) per query; missing places come back as row -1 with score -inf."""
        ...

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these rows, in that order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this store (no secrets)."""
        ...


class FaissStore:
    """Today's FAISS index in the app process: exact filtered search (see stylishi.index)."""

    kind = "faiss"

    def __init__(self, index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, factory: str = faiss_index.DEFAULT_FACTORY) -> "FaissStore":
        return cls(faiss_index.build(vectors, factory))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int, selection: Selection | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        if params:
            faiss_index.apply_params(self.index, dict(params))
        return faiss_index.search(self.index, queries, k, None if selection is None else selection.rows)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return faiss_index.reconstruct(self.index, np.asarray(rows, dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "type": faiss_index.describe(self.index), "count": len(self), "dim": self.dim}


def pad_results(scores: list[list[float]], rows: list[list[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-query hits as FAISS-shaped arrays: (n, k) float32 scores and int64 rows, padded with -inf / -1."""
    out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
    out_r = np.full((len(rows), k), -1, dtype=np.int64)
    for i, (s, r) in enumerate(zip(scores, rows)):
        n = min(k, len(r))
        out_s[i, :n] = s[:n]
        out_r[i, :n] = r[:n]
    return out_s, out_r
