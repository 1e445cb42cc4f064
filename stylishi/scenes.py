"""Generated multi-garment scenes: several garments in a room, as a phone or webcam would photograph an outfit laid
out or hung up. What the offline demo's garment detector is trained on and tested with.

A scene is drawn from one integer seed (the ranges of `demo.SEEDS` keep training and held-out scenes apart): 1-4
demo garments, each lifted off its product-shot backdrop, scaled to 22-60 % of the frame's height, tilted, and put
on a room background (`camera.clutter`) where it overlaps no other much; then the camera's colour jitter, blur,
noise and JPEG (`camera.develop`). The true boxes come from the garments' own masks: they are the labels a detector
learns from and is measured against, never an input to the search. Training scenes use the seeds
`SEEDS["training"] + 800_000 + n`, held-out ones `SEEDS["heldout"] + 800_000 + n`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from .camera import FRAME, clutter, develop, foreground_mask
from .demo import CATALOG_COLOURS, GARMENTS, PATTERNS, garment_picture

# The detector's classes: those of the default Hub detector (yainage90/fashion-object-detection), so that the page,
# the API and the tests read the same labels offline and online.
LOOK_CLASSES = ("bag", "bottom", "dress", "hat", "shoes", "outer", "top")
CLASS_OF_TYPE = {
    "Tshirts": "top", "Tops": "top", "Jackets": "outer", "Dresses": "dress", "Skirts": "bottom",
    "Trousers": "bottom", "Shorts": "bottom", "Casual Shoes": "shoes", "Heels": "shoes", "Handbags": "bag",
    "Backpacks": "bag", "Caps": "hat",
}
# Relative height of each kind in a scene (a cap is smaller than a dress).
_HEIGHT = {"hat": (0.22, 0.36), "shoes": (0.22, 0.36), "bag": (0.28, 0.48)}
_DEFAULT_HEIGHT = (0.34, 0.60)


@dataclass
class Garment:
    article_type: str
    colour: str
    pattern: str
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame's width and height


@dataclass
class Scene:
    image: Image.Image
    garments: list[Garment] = field(default_factory=list)


def scene(seed: int, size: tuple[int, int] = FRAME, max_garments: int = 4) -> Scene:
    """The scene drawn from `seed`: the picture and, for each garment, what it is and where."""
    rng = random.Random(seed)
    w, h = size
    frame = clutter(size, rng)
    garments: list[Garment] = []
    taken: list[tuple[float, float, float, float]] = []
    wanted = rng.choices(range(1, max_garments + 1), weights=[2, 3, 3, 2][:max_garments])[0]
    for _ in range(wanted * 6):  # a few tries per garment to find room for it
        if len(garments) == wanted:
            break
        article_type = rng.choice(list(GARMENTS))
        colour, pattern = rng.choice(CATALOG_COLOURS), rng.choice(PATTERNS)
        label = CLASS_OF_TYPE[article_type]
        picture = garment_picture(article_type, colour, pattern, seed=rng.getrandbits(31), size=160)
        mask = foreground_mask(picture)
        cut = mask.point(lambda v: 255 if v > 96 else 0).getbbox()  # the garment itself, not the backdrop
        if cut is None:
            continue
        picture, mask = picture.crop(cut), mask.crop(cut)
        low, high = _HEIGHT.get(label, _DEFAULT_HEIGHT)
        gh = max(12, int(h * rng.uniform(low, high)))
        gw = max(12, int(picture.width * gh / picture.height))
        picture = picture.resize((gw, gh), Image.Resampling.BILINEAR)
        mask = mask.resize((gw, gh), Image.Resampling.BILINEAR)
        angle = rng.uniform(-12, 12)
        picture = picture.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        x = rng.randint(-picture.width // 10, w - picture.width + picture.width // 10)
        y = rng.randint(-picture.height // 10, h - picture.height + picture.height // 10)
        bbox = mask.point(lambda v: 255 if v > 96 else 0).getbbox()
        if bbox is None:
            continue
        box = (max(0, x + bbox[0]), max(0, y + bbox[1]), min(w, x + bbox[2]), min(h, y + bbox[3]))
        if (box[2] - box[0]) < 8 or (box[3] - box[1]) < 8:
            continue
        if any(_overlap(box, other) > 0.2 for other in taken):
            continue
        frame.paste(picture, (x, y), mask)
        taken.append(box)
        garments.append(Garment(article_type, colour, pattern, label,
                                (box[0] / w, box[1] / h, box[2] / w, box[3] / h)))
    return Scene(develop(frame, rng), garments)


def _overlap(a, b) -> float:
    """The share of the smaller box covered by the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(smaller, 1e-9)

