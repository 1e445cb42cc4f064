"""Calibrated "% match": a raw cosine turned into the chance that a result is the query's kind of product.

A raw cosine is not a number a shopper can read: with one model every photo result sits at 0.97-0.99, with another
every text result at 0.25-0.30. So, when an index is built (and when `stylishi eval --calibrate` is run), queries
whose right answer is known go through the real search service, and a monotone logistic (Platt) fit from the raw
cosine of each of their top-10 results to "this result has the query's article type" is stored in the manifest:

    "calibration": {
      "target": "article_type",
      "image": {"method": "platt", "a": 41.2, "b": -38.9, "n": 3000, "positives": 2210, "queries": 200,
                "score_range": [0.91, 0.99]},
      "text":  {...the same for text queries...},
      "fitted_by": "build", "fitted_at": "2026-12-02T03:10:00+00:00", "seed": 0
    }

Photo queries are camera-like shots (stylishi.camera) of catalog items, embedded as photo searches embed them
(focused on their main garment where focus is on: stylishi.focus), with the item itself left out of its own
results (otherwise the fit would learn "the same photo" instead of "the same kind of product"); text queries are the
catalog's article-type names and "{colour} {article type}" phrases. An index without an article_type column gets no
calibration, and an index without one (older builds) shows the raw cosine, labelled as such.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import catalog as catalog_mod

if TYPE_CHECKING:  # pragma: no cover
    from .service import SearchService
    from .embedder import Embedder

log = logging.getLogger(__name__)

TARGET = "article_type"  # what "the same kind of product" means
KINDS = ("image", "text")
PHOTO_QUERIES = 200  # camera-like shots per fit (fewer when the catalog is smaller)
TEXT_QUERIES = 100  # at most this many "{colour} {article type}" phrases, besides every article-type name
TOP_K = 10  # the results a shopper sees: the fit is made on those


@dataclass(frozen=True)
class Calibration:
    """A fitted monotone map from raw cosine to a probability: p = 1 / (1 + exp(-(a * score + b))), a >= 0."""

    a: float
    b: float
    n: int = 0  # (query, result) pairs the fit saw
    positives: int = 0  # how many of them had the query's article type
    queries: int = 0
    score_range: tuple[float, float] = (-1.0, 1.0)
    method: str = "platt"

    def probability(self, score: float | np.ndarray) -> np.ndarray:
        z = np.clip(self.a * np.asarray(score, dtype=np.float64) + self.b, -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": round(self.a, 6), "b": round(self.b, 6), "n": self.n,
                "positives": self.positives, "queries": self.queries,
                "score_range": [round(self.score_range[0], 6), round(self.score_range[1], 6)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        if not isinstance(data, Mapping) or data.get("method") != "platt":
            raise ValueError(f"unknown calibration method {data.get('method') if isinstance(data, Mapping) else data!r}")
        a, b = float(data["a"]), float(data["b"])
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0:
            raise ValueError("a calibration needs finite parameters and a slope a >= 0 (monotone)")
        lo, hi = data.get("score_range") or (-1.0, 1.0)
        return cls(a=a, b=b, n=int(data.get("n", 0)), positives=int(data.get("positives", 0)),
                   queries=int(data.get("queries", 0)), score_range=(float(lo), float(hi)))


def fit_platt(scores: np.ndarray, labels: np.ndarray, *, queries: int = 0, iterations: int = 100) -> Calibration:
    """Platt's logistic fit by Newton's method (numpy only), with his target smoothing so that perfectly separable
    data still gives finite parameters. The slope is kept >= 0: a higher cosine never means a lower chance. When the
    data say otherwise (a model no better than chance), the fit is the flat base rate."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("a calibration needs as many labels as scores, and at least one of each")
    pos, neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0))  # Platt (1999): targets that avoid 0 and 1
    mean, std = float(x.mean()), float(x.std()) or 1.0
    u = (x - mean) / std  # Newton on a standardised score: well conditioned even when every score is ~0.99
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(w[0] * u + w[1], -60, 60)))
        g = np.array([np.sum((p - t) * u), np.sum(p - t)])
        s = p * (1 - p) + 1e-12
        h = np.array([[np.sum(s * u * u), np.sum(s * u)], [np.sum(s * u), np.sum(s)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    if w[0] <= 0 or not np.all(np.isfinite(w)):
        rate = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
        a, b = 0.0, math.log(rate / (1 - rate))
    else:
        a, b = float(w[0] / std), float(w[1] - w[0] * mean / std)
    return Calibration(a=a, b=b, n=int(x.size), positives=pos, queries=queries,
                       score_range=(float(x.min()), float(x.max())))


def from_manifest(manifest: Mapping[str, Any]) -> dict[str, Calibration]:
    """The calibrations an index carries, by query kind ("image", "text"); {} for an index without one. A damaged
    section is ignored with a warning (the raw cosine is then shown, labelled as such), never trusted."""
    section = manifest.get("calibration")
    if not isinstance(section, Mapping):
        return {}
    out = {}
    for kind in KINDS:
        if kind not in section:
            continue
        try:
            out[kind] = Calibration.from_dict(section[kind])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the %s calibration in the manifest (%s); raw scores are shown instead", kind, exc)
    return out


# -- fitting on a catalog, through the search service ------------------------------------------------------------
def labelled_scores(service: "SearchService", *, photo_queries: int = PHOTO_QUERIES, text_queries: int = TEXT_QUERIES,
                    seed: int = 0, rows: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """(raw cosines, same-article-type labels, number of queries) per query kind, from real searches."""
    from .camera import camera_shot
    from .focus import picture_vectors
    from .images import load_image

    items = service.catalog.items
    if TARGET not in items.columns:
        return {}
    types = items[TARGET].astype("string").fillna("").to_numpy(dtype=object)
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    # Queries are embedded first (as photo searches embed them: stylishi.focus), then searched with the service's own
    # search_vector: the same vectors and results as search_image / search_text, at a fraction of the time.
    jpegs = service.catalog.thumbnails.column("jpeg")
    if rows is None:
        candidates = np.array([r for r in range(len(service.catalog)) if types[r] and jpegs[r].is_valid], dtype=int)
        rows = rng.permutation(candidates)[:photo_queries]
    rows = [int(r) for r in rows]

    def shot(r: int):
        return camera_shot(load_image(jpegs[r].as_py()), random.Random(f"stylishi-calibration-{seed}-{r}"))

    # Each shot has its own seeded generator, so threads (PIL and numpy release the GIL) give the same pictures.
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        shots = list(pool.map(shot, rows))
    vectors = picture_vectors(service, shots)  # focused on their main garment as photo searches are
    scores, labels = [], []
    for row, vector in zip(rows, vectors):
        results = service.search_vector(vector, k=min(TOP_K + 1, service.limits.max_k)).results
        own = str(items.at[row, "id"])
        hits = [r for r in results if r.id != own][:TOP_K]
        scores += [r.score for r in hits]
        labels += [types[service.catalog.row_of(r.id)] == types[row] for r in hits]
    if scores:
        out["image"] = (np.array(scores), np.array(labels, dtype=bool), len(rows))

    probes = text_probes(service, limit=text_queries, seed=seed)
    vectors = service.embedder.embed_texts([text for text, _ in probes]) if probes else []
    scores, labels = [], []
    for (_, wanted), vector in zip(probes, vectors):
        for r in service.search_vector(vector, k=TOP_K).results:
            scores.append(r.score)
            labels.append(types[service.catalog.row_of(r.id)] == wanted)
    if scores:
        out["text"] = (np.array(scores), np.array(labels, dtype=bool), len(probes))
    return out


def text_probes(service: "SearchService", *, limit: int = TEXT_QUERIES, seed: int = 0) -> list[tuple[str, str]]:
    """(query text, the article type it asks for): every article-type name, and up to `limit` of the catalog's
    "{colour} {article type}" pairs."""
    items = service.catalog.items
    if TARGET not in items.columns:
        return []
    types = sorted({str(v) for v in items[TARGET].dropna() if str(v).strip()})
    probes = [(t, t) for t in types]
    if "colour" in items.columns:
        pairs = items[[TARGET, "colour"]].dropna().astype(str).drop_duplicates()
        pairs = pairs[(pairs[TARGET].str.strip() != "") & (pairs["colour"].str.strip() != "")]
        pairs = pairs.sample(frac=1.0, random_state=seed).head(limit)
        probes += [(f"{c} {t}", t) for t, c in zip(pairs[TARGET], pairs["colour"])]
    return probes


def fit(service: "SearchService", *, seed: int = 0, fitted_by: str = "build", photo_queries: int = PHOTO_QUERIES,
        text_queries: int = TEXT_QUERIES) -> dict[str, Any] | None:
    """The manifest's `calibration` section for the service's catalog, or None when it has no article types."""
    data = labelled_scores(service, photo_queries=photo_queries, text_queries=text_queries, seed=seed)
    if not data:
        log.info("no calibration: the catalog has no %s column (or nothing to query with)", TARGET)
        return None
    section: dict[str, Any] = {"target": TARGET}
    for kind, (scores, labels, queries) in data.items():
        section[kind] = fit_platt(scores, labels, queries=queries).to_dict()
    section.update(fitted_by=fitted_by, seed=seed,
                   fitted_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    return section


def write(root: str | Path, section: Mapping[str, Any] | None) -> None:
    """Store (or, with None, remove) the calibration in a local index's manifest. The data files, and so the
    checksums the manifest lists, are untouched; the manifest itself is replaced atomically."""
    path = Path(root) / catalog_mod.MANIFEST
    manifest = catalog_mod.read_manifest(root)
    if section is None:
        manifest.pop("calibration", None)
    else:
        manifest["calibration"] = dict(section)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def calibrate_index(root: str | Path, embedder: "Embedder", *, seed: int = 0) -> dict[str, Any] | None:
    """The builder's hook: load the artifact just written, as the app will, fit, and store the result."""
    from .service import SearchService

    service = SearchService(embedder, catalog_mod.load(root))  # the model is checked against it there
    section = fit(service, seed=seed, fitted_by="build")
    if section is not None:
        write(root, section)
    return section
