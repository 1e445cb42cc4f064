"""What a search answers: ranked, scored products and stage timings, as plain dataclasses (JSON via to_dict)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class SearchResult:
    """One matching product. Each field has one meaning in every catalog: `category` is the catalog's `category`
    column (e.g. "Apparel"), the same values the `category` filter takes, so a result's category passed back as a
    filter works; the finer kinds have their own fields. A field the catalog lacks is "" (never guessed)."""

    rank: int
    id: str
    score: float  # cosine similarity, -1..1
    match: float  # 0..100 for people: the calibrated chance of the query's article type, else the raw score x100
    name: str
    category: str  # the catalog's category column, e.g. "Apparel"; "" if it has none
    article_type: str  # e.g. "Dresses"; "" if the catalog has none
    colour: str  # e.g. "Red"; "" if the catalog has none
    thumbnail: str  # a file path
    metadata: dict[str, Any] = field(default_factory=dict)
    # Near-duplicates folded into this result (stylishi.dedup): how many, and their ids (best first).
    folded: int = 0
    folded_ids: list[str] = field(default_factory=list)

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
    # True: each `match` is the calibrated chance (x100) that the result has the query's article type (the index
    # carries a calibration, stylishi.calibration); False: an older index, `match` is the raw cosine x100.
    calibrated: bool = False
    # How "like this, but …" words were read (stylishi.modifiers.Reading); None without words.
    reading: Any = None
    # The region of the query picture searched, [x0, y0, x1, y1] as fractions; None: the whole picture.
    box: list[float] | None = None
    # A picture query's own vector, before any words changed it: re-read other words without the picture.
    picture_vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Whether near-duplicates were folded (stylishi.dedup), and how many results they were in all.
    dedup: bool = False
    folded: int = 0
    # The garment a photo search focused on (stylishi.focus.Focused); None: the picture (or region) as it was.
    focus: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "timings_ms": self.timings_ms,
                "catalog_size": self.catalog_size, "query": self.query, "calibrated": self.calibrated,
                "reading": self.reading.to_dict() if self.reading is not None else None, "box": self.box,
                "dedup": self.dedup, "folded": self.folded,
                "focus": self.focus.to_dict() if self.focus is not None else None}


__all__ = ["SearchResult", "SearchResponse"]
