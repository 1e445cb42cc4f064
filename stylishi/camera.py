"""A camera-like shot of a product picture: what a webcam or a phone makes of a garment held up in a room.

One function, `camera_shot`, used everywhere a query has to look like a real shot rather than the catalog picture
itself: training the offline demo's model, the evaluation command's exact-item test, and the semantic tests.
Every random choice comes from the `rng` it is given, so a seed gives the same shot on any machine.

The recipe (the evaluation protocol of the project): a random crop keeping 70-95 % of each side, a rotation of up
to ±10°, a perspective tilt, the garment lifted off its plain product-shot background and placed on a cluttered
background (a room: muted walls and furniture, a few small bright things) so that it fills 40-80 % of the frame's
height, colour jitter (brightness, contrast, saturation, white balance), a little blur and sensor noise, and JPEG at
quality ≈ 60.
"""
from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

FRAME = (320, 240)  # a webcam's 4:3 frame (small: the models see 224 px or less)


def camera_shot(picture: Image.Image, rng: random.Random | int, size: tuple[int, int] = FRAME) -> Image.Image:
    """The picture as a camera would see it, on a cluttered background; `rng` (or an int seed) makes every choice."""
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    w, h = size
    picture = picture.convert("RGB")
    # 1. Crop 70-95 % of each side, anywhere.
    pw, ph = picture.size
    cw, ch = int(pw * rng.uniform(0.70, 0.95)), int(ph * rng.uniform(0.70, 0.95))
    x0, y0 = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
    crop = picture.crop((x0, y0, x0 + cw, y0 + ch))
    # 2. Scale so the crop fills 40-80 % of the frame's height.
    target_h = max(8, int(h * rng.uniform(0.40, 0.80)))
    target_w = max(8, int(cw * target_h / ch))
    crop = crop.resize((target_w, target_h), Image.Resampling.BILINEAR)
    # 3. Lift the garment off its plain background (a soft mask by distance to the border's colour).
    mask = foreground_mask(crop)
    # 4. Perspective tilt, then rotation, applied to the picture and its mask alike.
    coeffs = _perspective_coeffs(target_w, target_h, rng, strength=0.08)
    crop = crop.transform(crop.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    mask = mask.transform(mask.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    angle = rng.uniform(-10, 10)
    crop = crop.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    # 5. On a cluttered background, anywhere in the frame's central square (what a centre-cropping model sees),
    #    a little of it sometimes outside.
    frame = clutter(size, rng)
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    gx = left + rng.randint(-crop.width // 8, max(-crop.width // 8, side - crop.width + crop.width // 8))
    gy = top + rng.randint(-crop.height // 10, max(-crop.height // 10, side - crop.height + crop.height // 10))
    frame.paste(crop, (gx, gy), mask)
    # 6-8. Colour jitter and white balance, blur and noise, JPEG.
    return develop(frame, rng)


def develop(frame: Image.Image, rng: random.Random) -> Image.Image:
    """What the camera does to a composed frame: colour jitter and white balance, blur, sensor noise, then JPEG at
    quality ≈ 60 as a camera or a browser would send it."""
    frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.75, 1.25))
    frame = ImageEnhance.Contrast(frame).enhance(rng.uniform(0.75, 1.25))
    frame = ImageEnhance.Color(frame).enhance(rng.uniform(0.8, 1.2))
    arr = np.asarray(frame, dtype=np.float32) * np.array([rng.uniform(0.92, 1.08) for _ in range(3)], np.float32)
    # Blur and sensor noise.
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(1.5, 5.0), arr.shape)
    frame = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.2)))
    # JPEG.
    buf = io.BytesIO()
    frame.save(buf, format="JPEG", quality=rng.randint(55, 65))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def clutter(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A busy room-like background: a tinted wall gradient with furniture-like blocks, lines and blobs in a room's
    muted colours, and a few small brightly coloured things (a book, a mug, a poster) here and there."""
    w, h = size
    base = np.array(_room_colour(rng), np.float32)
    tilt = np.array([rng.uniform(-40, 40) for _ in range(3)], np.float32)
    ramp = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None, None] * tilt
    img = Image.fromarray(np.clip(base + ramp + np.zeros((h, w, 3), np.float32), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(8, 18)):
        bright = rng.random() < 0.2
        colour = tuple(rng.randint(0, 255) for _ in range(3)) if bright else _room_colour(rng)
        scale = 3 if bright else 1  # bright things are small
        x, y = rng.randint(-w // 4, w), rng.randint(-h // 4, h)
        bw, bh = rng.randint(w // 12, w // 2) // scale, rng.randint(h // 12, h // 2) // scale
        kind = rng.random()
        if kind < 0.45:
            draw.rectangle([x, y, x + bw, y + bh], fill=colour)
        elif kind < 0.75:
            draw.ellipse([x, y, x + bw, y + bh], fill=colour)
        else:
            draw.line([x, y, x + bw, y + rng.randint(-bh, bh)], fill=colour, width=rng.randint(2, 8))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))  # the room is out of focus


def _room_colour(rng: random.Random) -> tuple[int, int, int]:
    """A wall's, a floor's or a piece of furniture's colour: any hue, little saturation, any brightness."""
    value, sat = rng.uniform(0.25, 0.9), rng.uniform(0.0, 0.3)
    tint = np.array([rng.random() for _ in range(3)])
    rgb = value * (1 - sat + sat * tint / max(tint.max(), 1e-6))
    return tuple(int(round(c * 255)) for c in rgb)


def foreground_mask(picture: Image.Image) -> Image.Image:
    """Where the product is: pixels far from the backdrop, modelled as a smooth gradient fitted to the border (a
    soft edge). The whole crop when the border is busy (a photo already), so nothing is ever lost."""
    arr = np.asarray(picture, dtype=np.float32)
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    edge = np.zeros((h, w), bool)
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = True, True, True, True
    basis = np.stack([np.ones(h * w, np.float32), xx.ravel() / w, yy.ravel() / h], axis=1)
    border = arr[edge]
    plain = np.abs(border - np.median(border, axis=0)).sum(axis=1) < 40  # the garment may touch the border
    if plain.mean() < 0.4:  # not a plain backdrop
        return Image.new("L", picture.size, 255)
    coef, *_ = np.linalg.lstsq(basis[edge.ravel()][plain], border[plain], rcond=None)
    backdrop = (basis @ coef).reshape(h, w, 3)
    dist = np.abs(arr - backdrop).sum(axis=2)
    alpha = np.clip((dist - 12.0) * (255.0 / 16.0), 0, 255).astype(np.uint8)
    mask = Image.fromarray(alpha).filter(ImageFilter.GaussianBlur(0.6))
    if np.asarray(mask).mean() < 0.03 * 255:  # (almost) nothing found: keep the picture whole
        return Image.new("L", picture.size, 255)
    return mask


def _perspective_coeffs(w: int, h: int, rng: random.Random, strength: float) -> list[float]:
    """PIL's 8 perspective coefficients moving each corner by up to `strength` of the side."""
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    src = [(x + rng.uniform(-strength, strength) * w, y + rng.uniform(-strength, strength) * h) for x, y in dst]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64)).tolist()
