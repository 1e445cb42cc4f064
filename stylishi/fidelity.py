"""Fidelity: does a model (or a faster copy of it) give the vectors it should?

Two questions, one measure (the cosine between the vectors a model gives and the vectors it should give):
- a faster CPU path (OpenVINO, int8) against the same model in fp32, on probe pictures and probe texts: kept only if
  its error is far below the distance between neighbouring catalog items, so that rankings survive (`judge`);
- a loaded model against the vectors an index stores for its own thumbnails (`catalog_cosine`).

Real weights have outliers that random ones lack, so the gate runs on the loaded checkpoint itself, every start;
the fp32 reference vectors are cached per checkpoint so that later starts never run the fp32 image tower.
Probe pictures are generated here (seeded shapes, gradients and noise), independent of any catalog or demo.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog
    from .embedder import Embedder

log = logging.getLogger(__name__)

# The fast path must stay at least this close to fp32 on every probe...
MIN_COSINE = 0.99
# ...and its error (1 - cosine) below this share of the gap between neighbouring catalog items.
GAP_SHARE = 0.25
# The OpenVINO text tower must be closer still: it replaces torch's for every text query (and lets the torch model go).
TEXT_MIN_COSINE = 0.999
# An engine that stands in for torch fp32 itself (OpenVINO at f32, in builds) must give the same vectors, to rounding.
EXACT_COSINE = 0.99999
PROBE_VERSION = "probes-v2"
PROBE_PICTURES = 7  # how many probe_pictures() makes
# Near neighbours (one word apart) as well as far ones, like the queries a shop gets.
PROBE_TEXTS = ("red summer dress", "red striped summer dress", "orange summer dress", "navy blue checked shirt",
               "blue checked shirt", "beige leather shoes", "green cap", "black handbag")


@dataclass(frozen=True)
class Verdict:
    """How a faster tower compares with fp32 on the probes."""

    tower: str  # "image" or "text"
    cosine: float  # the worst probe's cosine to its fp32 vector
    gap: float  # 1 - cosine between neighbours that must not swap places
    faithful: bool

    def __str__(self) -> str:
        return f"{self.tower} tower: cosine {self.cosine:.5f} to fp32; neighbours {self.gap:.5f} apart"


def probe_pictures(size: int = 224) -> list[Image.Image]:
    """Seven seeded pictures: pairs that differ only a little (a colour shade, a stripe) and some far apart."""
    def shape(background, colour, kind, stripes=0, seed=0):
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 6, (size, size, 1)).astype(np.float32)
        base = np.clip(np.asarray(background, np.float32) + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(base, "RGB")
        draw = ImageDraw.Draw(img)
        box = (size * 0.25, size * 0.2, size * 0.75, size * 0.85)
        if kind == "ellipse":
            draw.ellipse(box, fill=colour)
        elif kind == "triangle":
            draw.polygon([(size * 0.5, size * 0.15), (size * 0.2, size * 0.85), (size * 0.8, size * 0.85)], fill=colour)
        else:
            draw.rectangle(box, fill=colour)
        for i in range(stripes):
            y = box[1] + (i + 1) * (box[3] - box[1]) / (stripes + 1)
            draw.line([(box[0], y), (box[2], y)], fill=(255, 255, 255), width=max(2, size // 50))
        return img

    gradient = np.linspace(0, 255, size, dtype=np.float32)
    sky = np.stack([np.tile(gradient, (size, 1)), np.tile(gradient[:, None], (1, size)),
                    np.full((size, size), 128, np.float32)], axis=-1).astype(np.uint8)
    return [shape((240, 240, 240), (200, 30, 40), "triangle", stripes=3, seed=1),
            shape((240, 240, 240), (200, 30, 40), "triangle", stripes=0, seed=2),
            shape((240, 240, 240), (230, 120, 30), "triangle", stripes=3, seed=3),
            shape((235, 235, 230), (20, 30, 90), "rectangle", stripes=4, seed=4),
            shape((235, 235, 230), (40, 70, 200), "rectangle", stripes=4, seed=5),
            shape((250, 250, 250), (210, 190, 150), "ellipse", seed=6),
            Image.fromarray(sky, "RGB")]


def reference_vectors(embedder: "Embedder", tower: str) -> np.ndarray:
    """fp32 vectors of the probes for one tower ("image" or "text"), cached per checkpoint: a later start never
    runs the fp32 image tower, so its weights are never paged in (~400 MB of RSS saved when a faster one takes over).
    Call it before switching a tower."""
    from .config import cache_dir

    count = len(PROBE_TEXTS) if tower == "text" else PROBE_PICTURES
    digest = hashlib.sha256(f"{embedder.weights_key()}|{PROBE_VERSION}|{tower}|{count}".encode()).hexdigest()[:16]
    path = cache_dir() / "probes" / f"{digest}.npy"
    if path.exists():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (count, embedder.dim):
                return cached
        except (OSError, ValueError):
            pass
    reference = embed_probes(embedder, tower)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, reference, allow_pickle=False)
    tmp.replace(path)
    return reference


def embed_probes(embedder: "Embedder", tower: str) -> np.ndarray:
    """The probes through the embedder as it is now (whatever its towers are)."""
    if tower == "text":
        return embedder.embed_texts(list(PROBE_TEXTS))
    return embedder.embed_images(probe_pictures())


def judge(tower: str, reference: np.ndarray, candidate: np.ndarray, neighbour_gap: float | None = None,
          min_cosine: float = MIN_COSINE) -> Verdict:
    """Faithful: every probe at cosine >= `min_cosine` to fp32, and an error well below the gap between neighbours:
    the catalog's (`Catalog.neighbour_gap`) or, without a catalog, the one between the closest probes."""
    cosine = float(np.min(np.sum(reference * candidate, axis=1)))
    if neighbour_gap is None:
        neighbour_gap = closest_gap(reference)
    faithful = cosine >= min_cosine and (1 - cosine) < GAP_SHARE * neighbour_gap
    return Verdict(tower, cosine, float(neighbour_gap), faithful)


def closest_gap(vectors: np.ndarray) -> float:
    """1 - cosine between the two closest of these unit vectors."""
    gram = vectors @ vectors.T
    return 1 - float(np.max(gram[~np.eye(len(vectors), dtype=bool)]))


def catalog_cosine(embedder: "Embedder", catalog: "Catalog", sample: int = 4) -> float | None:
    """The median cosine between a few catalog thumbnails, embedded now, and the vectors the index stores for them
    (None: the index has no usable thumbnail). The same model gives ~1; another model of the same size far less."""
    from .config import Limits
    from .errors import StyliShiError
    from .images import load_image

    jpegs = catalog.thumbnails.column("jpeg")
    rows = [r for r in range(len(catalog)) if jpegs[r].is_valid]
    if not rows:
        return None
    rows = [rows[int(i)] for i in np.unique(np.linspace(0, len(rows) - 1, min(sample, len(rows))).astype(int))]
    pictures, used = [], []
    for r in rows:
        try:
            pictures.append(load_image(jpegs[r].as_py(), Limits()))
            used.append(r)
        except StyliShiError:
            continue
    if not pictures:
        return None
    got = embedder.embed_images(pictures)
    stored = catalog.store.vectors(np.array(used))
    stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
    median = float(np.median(np.sum(got * stored, axis=1)))
    log.info("model check: %d catalog pictures embed at a median cosine of %.4f to their stored vectors",
             len(pictures), median)
    return median
