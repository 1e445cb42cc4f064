"""Focus: a photo searched by its main garment as well as by the whole frame.

A webcam or phone shot shows a garment somewhere in a room, while the catalog's pictures are the garment alone. So
before a photo is embedded, shop the look's detector finds its most confident garment; the garment is cut out as a
square at two margins, and the query vector is the whole picture's vector plus the mean of the cut-outs' vectors
(normalised). Measured on the offline demo's held-out camera-like shots (`stylishi eval`, README "How good is
it?"), this lifts recall@10 from about 0.78 to about 0.90; the whole frame keeps what a bad box would lose. A
region the shopper drew is searched as drawn; a photo with no garment found, or one that is a catalog picture
itself, is searched whole.

Whether it runs is decided here (`choose_focus`, STYLISHI_FOCUS / --focus): "auto" turns it on where the detector
is cheap (the offline demo's, ~11 ms a photo on CPU), and off for the default Hub detector, which takes ~1.5 s a
photo on 2 CPU cores (BENCHMARKS.md): "on" is for a GPU.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from . import region
from .errors import ModelError
from .look import DEMO_DETECTOR, DetectorChoice, Looker, widened

log = logging.getLogger(__name__)

MARGINS = (0.2, 0.35, 0.5)  # the cut-outs: a square around the garment, its longer side grown by this share each end
WHOLE = 0.7  # the whole picture's weight beside the cut-outs' mean (1): chosen on camera-like shots, see `combine`


@dataclass(frozen=True)
class FocusChoice:
    """Whether photo searches focus on their main garment, and why (recorded: /stats, the evaluation report)."""
    on: bool
    why: str


def choose_focus(setting: str, detector: DetectorChoice) -> FocusChoice:
    """setting: STYLISHI_FOCUS / --focus: "auto" (default), "on" or "off"; `detector`: shop the look's choice."""
    setting = (setting or "auto").strip().lower()
    if setting == "off":
        return FocusChoice(False, "turned off (STYLISHI_FOCUS=off)")
    if detector.source is None:
        return FocusChoice(False, "no garment detector (STYLISHI_DETECTOR=off)")
    if setting == "on":
        return FocusChoice(True, "turned on (STYLISHI_FOCUS=on)")
    if detector.source == str(DEMO_DETECTOR):
        return FocusChoice(True, "the offline demo's detector is cheap on CPU (~11 ms a photo)")
    return FocusChoice(False, "auto: this detector is slow on CPU (the default: ~1.5 s a photo on 2 cores); "
                              "STYLISHI_FOCUS=on turns it on, e.g. on a GPU")


@dataclass(frozen=True)
class Focused:
    """The garment a photo search focused on."""
    label: str
    score: float  # the detector's confidence, 0..1
    box: list[float]  # x0, y0, x1, y1 as fractions of the searched picture

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 4) for v in self.box]}


class Focus:
    """The views a photo is embedded from: the whole picture, then its main garment's cut-outs when focus is on."""

    def __init__(self, looker: Looker, choice: FocusChoice):
        self.looker, self.choice = looker, choice
        self._failed: str | None = None  # a detector that cannot load: photos are searched whole, said once
        self._lock = threading.Lock()

    @property
    def on(self) -> bool:
        return self.choice.on and self._failed is None

    def views(self, picture: Image.Image) -> tuple[list[Image.Image], Focused | None]:
        if not self.on:
            return [picture], None
        try:
            detector = self.looker.detector()
        except ModelError as exc:
            with self._lock:
                if self._failed is None:
                    self._failed = str(exc)
                    log.warning("photo searches are not focused on their garment: %s", exc)
            return [picture], None
        found = detector.detect(picture, max_items=1)
        if not found:
            return [picture], None
        top = found[0]
        cuts = [picture.crop(region.Box(*widened(top, picture.size, m)).pixels(*picture.size)) for m in MARGINS]
        if min(min(cut.size) for cut in cuts) < region.MIN_SIDE_PX:  # a speck: too little to search by
            return [picture], None
        return [picture, *cuts], Focused(top.label, top.score, list(top.box))

    def status(self) -> dict[str, Any]:
        return {"on": self.on, "why": self.choice.why if self._failed is None else
                "the detector could not be loaded: photos are searched whole"}


def combine(vectors: np.ndarray) -> np.ndarray:
    """One query vector `[1, dim]` from the views' unit vectors: the whole picture's at WHOLE plus the cut-outs'
    mean. MARGINS and WHOLE were picked on the offline demo's camera-like shots of one evaluation seed (recall@10:
    margins 0.2/0.35 at weight 1, 0.887; 0.2/0.35/0.5 at 0.7, 0.901; whole picture alone 0.775) and held on
    another seed's shots (0.907; alone 0.792), all with the demo's previous model; with the current one, 0.944 (alone
    0.854)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 1:
        return vectors[:1]
    joined = WHOLE * vectors[0] + vectors[1:].mean(axis=0)
    norm = float(np.linalg.norm(joined))
    return vectors[:1] if norm < 1e-6 else (joined / norm).reshape(1, -1).astype(np.float32)


def query_vector(service, vectors: np.ndarray, focused: Focused | None) -> tuple[np.ndarray, Focused | None]:
    """The query vector `[1, dim]` of a photo from its views' unit vectors (`views`), and the garment it focused on.
    A photo that is a catalog picture (its whole-picture vector within the near-duplicate threshold of an item,
    stylishi.dedup) is searched as it is: cut-outs of a product photo only blur which product it is."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if focused is None or len(vectors) == 1:
        return vectors[:1], None
    scores, _ = service.catalog.store.search(vectors[:1], 1, None)
    if scores.size and float(scores[0][0]) >= service.dedup_threshold:
        return vectors[:1], None
    return combine(vectors), focused


def picture_vectors(service, pictures: Sequence[Image.Image]) -> np.ndarray:
    """Unit query vectors `[n, dim]` for decoded photos, focused as the service's photo searches are (batched
    when focus is off)."""
    if not service.focus.on:
        return np.concatenate([service.embedder.embed_images(pictures[i:i + 32]) for i in range(0, len(pictures), 32)]
                              ) if len(pictures) else np.zeros((0, service.catalog.dim), np.float32)
    out = []
    for picture in pictures:
        views, focused = service.focus.views(picture)
        out.append(query_vector(service, service.embedder.embed_images(views), focused)[0])
    return np.concatenate(out) if out else np.zeros((0, service.catalog.dim), np.float32)


__all__ = ["FocusChoice", "Focused", "Focus", "choose_focus", "combine", "query_vector", "picture_vectors"]
