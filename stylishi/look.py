"""Shop the look: every garment in a photo found, and the catalog searched for each, by its own region.

Which detector runs is decided here (`choose_detector`): the offline demo's trained one when the offline demo is
served, the default Hub detector otherwise, another Hub id or folder when STYLISHI_DETECTOR / --detector names
one, none with "off". It loads on the first request (`Looker`), once, so a start-up never waits for it; a detector
that cannot load is reported on every request with the reason, and the rest of the app runs on.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detector import DEFAULT_DETECTOR, Detection, Detector
from .errors import ModelError, StyliShiError
from .images import ImageInput, load_image
from .results import SearchResponse

DEMO_DETECTOR = Path(__file__).resolve().parents[1] / "data" / "demo_detector"  # shipped, trained on scenes
MAX_GARMENTS = 6
# The detector's classes → the catalog subcategories of that kind (the names of Fashion Product Images, which the
# starter index and the demo use): a garment's results stay of its kind when the catalog has those values.
KIND_SUBCATEGORIES = {"top": ("Topwear",), "outer": ("Topwear",), "dress": ("Dress",), "bottom": ("Bottomwear",),
                      "shoes": ("Shoes", "Sandal", "Flip Flops"), "bag": ("Bags",), "hat": ("Headwear",)}
MARGIN = 0.2  # the square searched around a found garment: its longer side, grown by this share at each end


@dataclass(frozen=True)
class DetectorChoice:
    """What shop-the-look runs on, and why (recorded, shown in /stats and in messages)."""
    source: str | None  # a Hub id or a folder; None: off
    revision: str | None
    why: str


def choose_detector(setting: str, *, serving_demo: bool) -> DetectorChoice:
    """setting: STYLISHI_DETECTOR / --detector: "auto" (default), "off", a Hub id (OWNER/NAME[@REV]) or a folder."""
    setting = (setting or "auto").strip()
    if setting.lower() == "off":
        return DetectorChoice(None, None, "turned off (STYLISHI_DETECTOR=off)")
    if setting.lower() == "auto":
        if serving_demo:
            return DetectorChoice(str(DEMO_DETECTOR), None, "the offline demo's detector, trained on generated scenes")
        return DetectorChoice(DEFAULT_DETECTOR, None, "the default garment detector")
    name, _, rev = setting.partition("@")
    return DetectorChoice(name, rev or None, "named by STYLISHI_DETECTOR / --detector")


def is_demo_catalog(manifest: dict) -> bool:
    """Whether an index is an offline demo (any version): its garments are the ones the demo detector knows."""
    return (manifest.get("source") or {}).get("kind") == "offline-demo"


@dataclass
class LookGarment:
    label: str
    score: float  # the detector's confidence, 0..1
    box: list[float]  # x0, y0, x1, y1 as fractions of the picture's width and height
    response: SearchResponse  # the catalog searched by this garment's region
    filters: dict | None = None  # the filters that search used: the shopper's, and the garment's kind (kind_filters)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 4) for v in self.box],
                "results": [r.to_dict() for r in self.response.results]}


@dataclass
class LookResponse:
    garments: list[LookGarment]
    timings_ms: dict[str, float]  # detect, search (all garments), total
    detector: str
    size: tuple[int, int] = (0, 0)  # the picture's width and height, as searched
    picture: Any = field(default=None, repr=False, compare=False)  # the decoded picture (for the page to draw on)

    def to_dict(self) -> dict[str, Any]:
        return {"garments": [g.to_dict() for g in self.garments], "timings_ms": self.timings_ms,
                "detector": self.detector}


class Looker:
    """The detector, loaded once on first use (thread-safe); a failure is kept and told on each request."""

    def __init__(self, choice: DetectorChoice, device: str = "cpu"):
        self.choice, self.device = choice, device
        self._detector: Detector | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.choice.source is not None

    def detector(self) -> Detector:
        if self.choice.source is None:
            raise ModelError("Shop the look is turned off on this server (STYLISHI_DETECTOR=off): search the whole "
                             "picture, or draw a box around one garment.")
        with self._lock:
            if self._detector is None and self._error is None:
                if self.choice.source == str(DEMO_DETECTOR):
                    from .demo import verify_checksums

                    verify_checksums(DEMO_DETECTOR)
                try:
                    self._detector = Detector.load(self.choice.source, revision=self.choice.revision,
                                                   device=self.device)
                except ModelError as exc:
                    self._error = str(exc)
            if self._detector is None:
                raise ModelError(f"Shop the look is not available: {self._error} Search the whole picture instead.")
            return self._detector

    def status(self) -> dict[str, Any]:
        """For /stats: which detector, why, and whether it loaded (no local paths: a folder by its name)."""
        source = self.choice.source
        if source is not None and Path(source).expanduser().is_dir():
            source = Path(source).name
        return {"detector": source, "revision": self.choice.revision, "why": self.choice.why,
                "loaded": self._detector is not None, "error": self._error is not None}


def shop_the_look(service, looker: Looker, image: ImageInput, k: int = 5, *, filters=None, dedup: bool = True,
                  threshold: float | None = None, max_garments: int = MAX_GARMENTS) -> LookResponse:
    """Find the garments in a picture, then search the catalog by each one's region (`service.search_image` with
    its box). No garment found is an answer, not an error: an empty list (the page offers the whole picture).
    threshold: the confidence a garment needs (default: the detector's own, Detector.threshold)."""
    t0 = time.perf_counter()
    try:
        detector = looker.detector()  # loaded on the first request: not a cost of this query
        response = _shop(service, detector, image, k, filters, dedup, threshold, max_garments)
    except Exception as exc:
        error = type(exc).__name__ if isinstance(exc, StyliShiError) else "InternalError"
        service.metrics.record_error("look", (time.perf_counter() - t0) * 1000, error)
        raise
    service.metrics.record("look", response.timings_ms["total"], results=len(response.garments))
    return response


def _shop(service, detector: Detector, image: ImageInput, k: int, filters, dedup: bool, threshold: float | None,
          max_garments: int) -> LookResponse:
    t0 = time.perf_counter()
    service._check_k(k)  # a bad k is told before any work
    picture = load_image(image, service.limits)
    t1 = time.perf_counter()
    found = detector.detect(picture, threshold=threshold, max_items=max_garments)
    t2 = time.perf_counter()
    garments = []
    for d in found:
        narrowed = kind_filters(service, d.label, filters)
        garments.append(LookGarment(d.label, d.score, list(d.box), service.search_image(
            picture, k, narrowed, box=widened(d, picture.size), dedup=dedup), narrowed))
    t3 = time.perf_counter()
    timings = {"decode": round((t1 - t0) * 1000, 3), "detect": round((t2 - t1) * 1000, 3),
               "search": round((t3 - t2) * 1000, 3), "total": round((t3 - t0) * 1000, 3)}
    return LookResponse(garments, timings, detector.model_id, picture.size, picture)


def kind_filters(service, label: str, filters) -> dict | None:
    """The filters of one garment's search: the shopper's, narrowed to the catalog subcategories of the detector's
    label (a shoe finds shoes) when the catalog has them and the shopper chose no subcategory."""
    present = set(service.filter_values.get("subcategory") or ())
    kinds = [v for v in KIND_SUBCATEGORIES.get(label, ()) if v in present]
    if not kinds or (filters and filters.get("subcategory")):
        return filters
    return {**(filters or {}), "subcategory": kinds}


def widened(found: Detection, size: tuple[int, int], margin: float = MARGIN) -> list[float]:
    """The region a garment is searched by: a square around the detector's box, its side the box's longer side
    grown by `margin` on each end, moved (and if need be shrunk) to stay within the picture. Square, because the
    embedder's processor centre-crops a square: a tall box would lose the top and bottom of a dress."""
    w, h = size
    x0, y0, x1, y1 = found.box[0] * w, found.box[1] * h, found.box[2] * w, found.box[3] * h
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * margin), w, h)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(cx - side / 2, 0.0), w - side)
    top = min(max(cy - side / 2, 0.0), h - side)
    return [left / w, top / h, (left + side) / w, (top + side) / h]


__all__ = ["DetectorChoice", "LookGarment", "LookResponse", "Looker", "choose_detector", "shop_the_look"]
