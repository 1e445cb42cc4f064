"""What a search answers: ranked, scored products and stage timings, as plain dataclasses (JSON via to_dict)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class SearchResult:
    rank: int
    id: str
    score: float  # cosine similarity, -1..1
    match: float  # the score as a percentage, 0..100, for people
    name: str
    category: str
    thumbnail: str  # a file path
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    results: list[SearchResult]
    timings_ms: dict[str, float]  # preprocess, embed, search, format, total
    catalog_size: int
    query: str  # "image", "text", "vector" or "item"
    # The query's unit vector: lets a caller re-rank (other k or filters) without the picture. Not in to_dict().
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "timings_ms": self.timings_ms,
                "catalog_size": self.catalog_size, "query": self.query}


__all__ = ["SearchResult", "SearchResponse"]
