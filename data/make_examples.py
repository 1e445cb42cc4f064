#!/usr/bin/env python
"""Make the example query pictures in data/examples/ (committed; rerun only to change them).

Each is a camera-like shot (`stylishi.camera.camera_shot`: crop, tilt, a cluttered room, colour jitter, blur,
JPEG) of a garment drawn by the offline demo's generator from a *held-out* seed: a product of the same kind as
some in the demo catalog, but never a copy of a catalog picture nor of anything the demo model trained on.
The file name says what it shows (the semantic tests check that each finds its own article type).

    python data/make_examples.py
"""
from __future__ import annotations

import random
from pathlib import Path


from stylishi.camera import camera_shot
from stylishi.demo import SEEDS, garment_picture

OUT = Path(__file__).resolve().parent / "examples"
# file name → (article type, colour, pattern); seeds SEEDS["heldout"] + 900_000 + n
EXAMPLES = {
    "red-dress.jpg": ("Dresses", "Red", "Solid"),
    "blue-striped-tshirt.jpg": ("Tshirts", "Blue", "Striped"),
    "black-jacket.jpg": ("Jackets", "Black", "Solid"),
    "yellow-handbag.jpg": ("Handbags", "Yellow", "Solid"),
    "green-checked-skirt.jpg": ("Skirts", "Green", "Checked"),
    "pink-shoes.jpg": ("Casual Shoes", "Pink", "Solid"),
}
SEED = SEEDS["heldout"] + 900_000


def example_picture(n: int, article_type: str, colour: str, pattern: str):
    seed = SEED + n
    return camera_shot(garment_picture(article_type, colour, pattern, seed=seed, size=336), random.Random(seed),
                       size=(480, 360))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for n, (name, spec) in enumerate(EXAMPLES.items()):
        example_picture(n, *spec).save(OUT / name, format="JPEG", quality=88, optimize=True)
        print(f"{OUT / name}: {(OUT / name).stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
