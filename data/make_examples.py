#!/usr/bin/env python
"""Make the example query pictures in data/examples/ (committed; rerun only to change them).

They are drawn with the offline demo's garment generator, but with other seeds, a bigger canvas, a coloured
backdrop, a slight tilt, blur and sensor noise, saved as JPEG: like a phone photo of a garment, and never an
exact copy of a catalog picture.

    python data/make_examples.py
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylishi.demo import garment_picture  # noqa: E402

OUT = Path(__file__).resolve().parent / "examples"
# file name → (article type, colour, pattern, backdrop RGB)
EXAMPLES = {
    "red-dress.jpg": ("Dresses", "Red", "Solid", (238, 232, 222)),
    "blue-striped-tshirt.jpg": ("Tshirts", "Blue", "Striped", (228, 233, 238)),
    "black-jacket.jpg": ("Jackets", "Black", "Solid", (236, 236, 232)),
    "yellow-handbag.jpg": ("Handbags", "Yellow", "Solid", (232, 236, 240)),
    "green-checked-skirt.jpg": ("Skirts", "Green", "Checked", (240, 236, 230)),
    "pink-shoes.jpg": ("Casual Shoes", "Pink", "Solid", (234, 234, 236)),
}


def photo_like(article_type: str, colour: str, pattern: str, backdrop: tuple[int, int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    garment = garment_picture(article_type, colour, pattern, seed=seed, size=300)
    # Lift the garment off its white product-shot background onto a backdrop, tilted a little.
    arr = np.asarray(garment).astype(np.int16)
    mask = Image.fromarray(((np.abs(arr - 250).sum(axis=2) > 12) * 255).astype(np.uint8))
    angle = rng.uniform(-7, 7)
    garment = garment.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=backdrop)
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    canvas = Image.new("RGB", (360, 420), backdrop)
    canvas.paste(garment, (30 + rng.randint(-8, 8), 55 + rng.randint(-8, 8)), mask)
    # A soft shading gradient, a little blur and sensor noise.
    h, w = canvas.height, canvas.width
    shade = np.linspace(1.03, 0.93, h)[:, None, None] * np.linspace(0.98, 1.02, w)[None, :, None]
    noisy = np.asarray(canvas.filter(ImageFilter.GaussianBlur(0.8))).astype(np.float32) * shade
    noisy += np.random.default_rng(seed).normal(0, 3.0, noisy.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for n, (name, (article_type, colour, pattern, backdrop)) in enumerate(EXAMPLES.items()):
        img = photo_like(article_type, colour, pattern, backdrop, seed=90_001 + 17 * n)
        img.save(OUT / name, format="JPEG", quality=82, optimize=True)
        print(f"{OUT / name}: {(OUT / name).stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
