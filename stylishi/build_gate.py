"""The build's fidelity gate: a faster image path (OpenVINO, bf16) writes a catalog's vectors only if it gives what
fp32 gives on the catalog itself, judged where shoppers look: each item's 10 nearest neighbours in the whole catalog.

Two stages:
- a pre-check on the first PRECHECK pictures (fp32 and each faster path, cosine >= MIN_COSINE on every one) picks the
  path that embeds the catalog, so that a broken path is never run over the whole catalog;
- the catalog gate, once every vector exists: a seeded sample of anchors spread over the whole catalog, each with its
  DEPTH nearest items by the fast vectors (its top 10 and a margin: the items that could enter an fp32 top 10),
  is embedded in fp32 and through the fast path from the catalog's own thumbnails (the same input for both), and
  judged: cosine >= MIN_COSINE on every picture, and each anchor's top 10 among them the same on average at
  >= MIN_OVERLAP. Neighbourhoods from the whole catalog make the judgement as hard as the catalog is dense: 128 first
  pictures judged among themselves looked 0.973 where the 1,024-picture catalog kept only 0.930 (BENCHMARKS.md).
  A path that fails it is undone and the catalog embedded again in fp32.

Its cost is bounded: at most `budget(n)` pictures embedded both ways, a share of the catalog for small ones and at
most MAX_BUDGET. The verdicts are kept in the manifest (`build.gate`) and the build summary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_COSINE = 0.999
MIN_OVERLAP = 0.95
TOP = 10
PRECHECK = 32  # the first this-many pictures pick the path (cosine only: too few to judge neighbours)
MIN_SAMPLE = 32  # a catalog smaller than this stays fp32: nothing to gain and too little to judge
DEPTH = 15  # each anchor's this-many nearest items by the fast vectors: its top 10 and a margin of 5
MIN_BUDGET = 160  # pictures embedded both ways by the catalog gate: at least this many (10 anchors)...
MAX_BUDGET = 768  # ...at most this many (48 anchors)...
BUDGET_SHARE = 8  # ...and in between, one picture in this many of the catalog


@dataclass(frozen=True)
class GateVerdict:
    """How one faster path compares with fp32 on the same catalog pictures."""

    mode: str  # the path judged: "openvino" or "bf16"
    stage: str  # "pre-check" (the first pictures, cosine only) or "catalog" (neighbourhoods across the catalog)
    items: int  # the pictures the verdict speaks for: the first PRECHECK, or the whole catalog
    sample: int  # pictures embedded both ways
    anchors: int  # items whose top-TOP neighbours were compared (0 for the pre-check)
    cosine_min: float
    cosine_median: float
    overlap: float | None  # mean share of each anchor's TOP neighbours that fp32 also has (None: not judged)
    faithful: bool

    def __str__(self) -> str:
        verdict = "kept" if self.faithful else "not faithful, not used"
        if self.stage == "pre-check":
            return (f"{self.mode} vs fp32, pre-check on the first {self.items} pictures: cosine min "
                    f"{self.cosine_min:.5f} (>= {MIN_COSINE}): {'passed' if self.faithful else verdict}")
        return (f"{self.mode} vs fp32 across the {self.items}-item catalog ({self.anchors} anchors and their "
                f"{DEPTH} nearest items, {self.sample} pictures): cosine min {self.cosine_min:.5f} (>= {MIN_COSINE}), "
                f"top-{TOP} overlap {self.overlap:.3f} (>= {MIN_OVERLAP}): {verdict}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget(n: int) -> int:
    """How many pictures the catalog gate embeds both ways for an n-item catalog."""
    return int(min(n, MAX_BUDGET, max(MIN_BUDGET, n // BUDGET_SHARE)))


def precheck(mode: str, reference: np.ndarray, candidate: np.ndarray) -> GateVerdict:
    """Every one of the first pictures at cosine >= MIN_COSINE to fp32 (enough pictures to judge at all)."""
    cosine = np.sum(reference * candidate, axis=1)
    faithful = len(reference) >= MIN_SAMPLE and float(cosine.min()) >= MIN_COSINE
    return GateVerdict(mode, "pre-check", len(reference), len(reference), 0, round(float(cosine.min()), 6),
                       round(float(np.median(cosine)), 6), None, faithful)


def neighbourhoods(vectors: np.ndarray, seed: int = 0, depth: int = DEPTH,
                   limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, rows): a seeded random order of the catalog's items taken as anchors while their neighbourhoods
    (each anchor and its `depth` nearest other items by these vectors) fit in `limit` pictures (default
    `budget(n)`); `rows` is the union of the neighbourhoods, anchors first in their own order."""
    n = len(vectors)
    limit = budget(n) if limit is None else limit
    depth = min(depth, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    rows: dict[int, None] = {}
    anchors: list[int] = []
    for start in range(0, n, 64):  # anchors' neighbours found 64 at a time: one matrix product each
        chunk = order[start:start + 64]
        scores = vectors[chunk] @ vectors.T
        scores[np.arange(len(chunk)), chunk] = -np.inf
        near = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth > 0 else np.zeros((len(chunk), 0), int)
        for anchor, neighbours in zip(chunk.tolist(), near.tolist()):
            new = [r for r in [anchor, *neighbours] if r not in rows]
            if len(rows) + len(new) > limit:
                return _ordered(anchors, rows)
            rows.update(dict.fromkeys(new))
            anchors.append(anchor)
    return _ordered(anchors, rows)


def _ordered(anchors: list[int], rows: dict[int, None]) -> tuple[np.ndarray, np.ndarray]:
    rest = [r for r in rows if r not in set(anchors)]
    return np.array(anchors, dtype=np.int64), np.array(anchors + rest, dtype=np.int64)


def judge(mode: str, reference: np.ndarray, candidate: np.ndarray, anchors: int, items: int) -> GateVerdict:
    """The catalog verdict on `candidate` (the fast path's unit vectors of the gate's pictures) against `reference`
    (fp32's, same pictures, same order); the first `anchors` rows are the anchors, the rest their neighbourhoods.
    `items`: the catalog's size, which the verdict speaks for."""
    cosine = np.sum(reference * candidate, axis=1)
    overlap = top_overlap(reference, candidate, anchors)
    faithful = (items >= MIN_SAMPLE and anchors > 0 and float(cosine.min()) >= MIN_COSINE
                and overlap >= MIN_OVERLAP)
    return GateVerdict(mode, "catalog", items, len(reference), anchors, round(float(cosine.min()), 6),
                       round(float(np.median(cosine)), 6), round(overlap, 4), faithful)


def top_overlap(reference: np.ndarray, candidate: np.ndarray, anchors: int | None = None, top: int = TOP) -> float:
    """Mean overlap of the first `anchors` rows' `top` nearest other rows, by inner product, between the two sets of
    vectors (default: every row's)."""
    n = len(reference)
    anchors = n if anchors is None else anchors
    top = min(top, n - 1)
    if top < 1 or anchors < 1:
        return 1.0

    def neighbours(x: np.ndarray) -> np.ndarray:
        scores = x[:anchors] @ x.T
        scores[np.arange(anchors), np.arange(anchors)] = -np.inf
        return np.argpartition(-scores, top - 1, axis=1)[:, :top]

    ref, cand = neighbours(reference), neighbours(candidate)
    return float(np.mean([len(set(a) & set(b)) / top for a, b in zip(ref.tolist(), cand.tolist())]))
