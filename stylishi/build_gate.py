"""The build's fidelity gate: a faster image path (OpenVINO, bf16) writes a catalog's vectors only if, on the
catalog's own first pictures, it gives what fp32 gives: every vector at cosine >= MIN_COSINE to its fp32 vector, and
each item's 10 nearest neighbours among those pictures the same on average at >= MIN_OVERLAP.

Measured on the catalog itself, not on probes: neighbours in a real catalog may be far closer than any probe pair,
and rankings are what people see. The verdict is kept in the manifest (`build.gate`) and the build summary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_COSINE = 0.999
MIN_OVERLAP = 0.95
SAMPLE = 128  # the first this-many readable pictures of the build are embedded in fp32 too
MIN_SAMPLE = 32  # fewer pictures than this (a tiny catalog): fp32, nothing to gain and too little to judge
TOP = 10


@dataclass(frozen=True)
class GateVerdict:
    """How one faster path compares with fp32 on the same catalog pictures."""

    mode: str  # the path judged: "openvino" or "bf16"
    items: int
    cosine_min: float
    cosine_median: float
    overlap: float  # mean share of each item's TOP neighbours (among the sample) that fp32 also has
    faithful: bool

    def __str__(self) -> str:
        return (f"{self.mode} vs fp32 on {self.items} catalog pictures: cosine min {self.cosine_min:.5f} "
                f"(>= {MIN_COSINE}), top-{TOP} overlap {self.overlap:.3f} (>= {MIN_OVERLAP}): "
                f"{'kept' if self.faithful else 'not faithful, not used'}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_overlap(reference: np.ndarray, candidate: np.ndarray, top: int = TOP) -> float:
    """Mean overlap of each row's `top` nearest other rows, by inner product, between the two sets of vectors."""
    n = len(reference)
    top = min(top, n - 1)
    if top < 1:
        return 1.0

    def neighbours(x: np.ndarray) -> np.ndarray:
        gram = x @ x.T
        np.fill_diagonal(gram, -np.inf)
        return np.argpartition(-gram, top - 1, axis=1)[:, :top]

    ref, cand = neighbours(reference), neighbours(candidate)
    return float(np.mean([len(set(a) & set(b)) / top for a, b in zip(ref, cand)]))


def judge(mode: str, reference: np.ndarray, candidate: np.ndarray) -> GateVerdict:
    """The verdict on `candidate` (a faster path's unit vectors) against `reference` (fp32's, same pictures)."""
    cosine = np.sum(reference * candidate, axis=1)
    overlap = top_overlap(reference, candidate)
    faithful = len(reference) >= MIN_SAMPLE and float(cosine.min()) >= MIN_COSINE and overlap >= MIN_OVERLAP
    return GateVerdict(mode, len(reference), round(float(cosine.min()), 6), round(float(np.median(cosine)), 6),
                       round(overlap, 4), faithful)
