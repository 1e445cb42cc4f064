"""A region of the query picture: the box a shopper drew, as fractions of its width and height.

The one place that decides whether a box can be used. A box is `[x0, y0, x1, y1]` with 0 ≤ x0 < x1 ≤ 1 and
0 ≤ y0 < y1 ≤ 1 (left, top, right, bottom; the same format shop-the-look answers with), given as a list or as its
JSON text; None, "" or "null" mean the whole picture. Anything else is refused with a QueryError saying how to fix it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .errors import QueryError

MIN_SIDE_PX = 16  # a region narrower or lower than this (in the picture's pixels) holds too little to search by
SLACK = 1e-3  # a drawn box may overshoot the picture's edge by this much (rounding in a browser); it is clamped
FORM = "[x0, y0, x1, y1] as fractions of the picture's width and height, e.g. [0.1, 0.2, 0.6, 0.9]"


@dataclass(frozen=True)
class Box:
    """A valid region: left, top, right, bottom as fractions (0..1) of the picture's width and height."""

    x0: float
    y0: float
    x1: float
    y1: float

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in a picture of this size, as Pillow's crop takes it (right and bottom exclusive)."""
        return (math.floor(self.x0 * width), math.floor(self.y0 * height),
                math.ceil(self.x1 * width), math.ceil(self.y1 * height))


def parse_box(box: Any) -> Box | None:
    """A checked Box, or None for the whole picture. Refuses (QueryError) a box that is not four numbers,
    lies outside the picture, or is inverted or empty."""
    if isinstance(box, Box) or box is None:
        return box
    if isinstance(box, str):
        if not box.strip() or box.strip() == "null":
            return None
        try:
            box = json.loads(box)
        except json.JSONDecodeError:
            raise QueryError(f"The box must be {FORM}; got text that is not JSON.") from None
        if box is None:
            return None
    if isinstance(box, dict) and set(box) >= {"x0", "y0", "x1", "y1"}:
        box = [box["x0"], box["y0"], box["x1"], box["y1"]]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        got = f"{len(box)} values" if isinstance(box, (list, tuple)) else type(box).__name__
        raise QueryError(f"The box must be four numbers, {FORM}; got {got}.")
    values = []
    for v in box:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise QueryError(f"The box must be four numbers, {FORM}; got {str(v)[:20]!r}.")
        if not math.isfinite(v):
            raise QueryError(f"The box holds {v}: each corner must be a finite number, {FORM}.")
        values.append(float(v))
    x0, y0, x1, y1 = values
    if min(values) < -SLACK or max(values) > 1 + SLACK:
        raise QueryError(f"The box {values} reaches outside the picture: each value must be a fraction from 0 to 1 "
                         f"of its width or height, {FORM}. (Pixels? Divide x by the width and y by the height.)")
    if x1 <= x0 or y1 <= y0:
        raise QueryError(f"The box {values} is inverted or empty: x0 must be left of x1 and y0 above y1, {FORM}.")
    clamp = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    return Box(clamp(x0), clamp(y0), clamp(x1), clamp(y1))


def crop(picture: Image.Image, box: Box | None) -> Image.Image:
    """The region of the picture (the picture itself for None); a region of under MIN_SIDE_PX pixels a side is
    refused, naming its size."""
    if box is None:
        return picture
    left, top, right, bottom = box.pixels(*picture.size)
    w, h = right - left, bottom - top
    if w < MIN_SIDE_PX or h < MIN_SIDE_PX:
        raise QueryError(f"The region is {w}×{h} pixels of a {picture.width}×{picture.height} picture: too small to "
                         f"search by. Draw a box at least {MIN_SIDE_PX} pixels on each side, around the garment.")
    return picture.crop((left, top, right, bottom))
