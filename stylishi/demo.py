"""The offline demo: garment-like product pictures and a tiny, randomly initialised CLIP, made on the spot.

It exercises every production code path (save_pretrained → from_pretrained, the builder, the artifact) with no
network at all. Similarity here is only as good as a random tiny model: it matches colours, shapes and layout,
not fashion sense.
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image, ImageDraw

COLOURS = {
    "Red": (200, 30, 40), "Blue": (40, 90, 210), "Navy Blue": (20, 30, 90), "Green": (40, 150, 60),
    "Black": (25, 25, 25), "Yellow": (240, 200, 30), "Pink": (240, 130, 180), "Purple": (120, 50, 160),
    "Brown": (120, 75, 40), "Orange": (245, 130, 30), "Grey": (130, 130, 135), "Beige": (215, 190, 150),
}
PATTERNS = ("Solid", "Striped", "Polka Dot", "Checked")
# article type → (category, subcategory, genders, display noun)
GARMENTS = {
    "Tshirts": ("Apparel", "Topwear", ("Men", "Women", "Unisex"), "T-shirt"),
    "Dresses": ("Apparel", "Dress", ("Women",), "Dress"),
    "Trousers": ("Apparel", "Bottomwear", ("Men", "Women"), "Trousers"),
    "Skirts": ("Apparel", "Bottomwear", ("Women",), "Skirt"),
    "Jackets": ("Apparel", "Topwear", ("Men", "Women"), "Jacket"),
    "Casual Shoes": ("Footwear", "Shoes", ("Men", "Women", "Unisex"), "Shoes"),
    "Handbags": ("Accessories", "Bags", ("Women",), "Handbag"),
    "Caps": ("Accessories", "Headwear", ("Men", "Unisex"), "Cap"),
}
SEASONS = ("Summer", "Winter", "Spring", "Fall")
SIZE = 224


@dataclass
class DemoItem:
    id: str
    image: Image.Image
    metadata: dict


def garment_picture(article_type: str, colour: str, pattern: str, seed: int = 0, size: int = SIZE) -> Image.Image:
    """A product-shot-like drawing: one garment on white, in a colour and a pattern."""
    rng = random.Random(seed)
    s = size / 224.0
    jitter = lambda v: v + rng.uniform(-6, 6)  # noqa: E731 - small pose changes between items
    scale = rng.uniform(0.92, 1.05)
    shapes = [(kind, [(jitter((x - 112) * scale + 112) * s, jitter((y - 112) * scale + 112) * s) for x, y in pts])
              for kind, pts in _outline(article_type)]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for kind, pts in shapes:
        if kind == "poly":
            draw.polygon(pts, fill=255)
        else:
            draw.ellipse([pts[0], pts[1]], fill=255)
    fabric = _fabric(COLOURS[colour], pattern, size, rng)
    img = Image.new("RGB", (size, size), (250, 250, 250))
    img.paste(fabric, (0, 0), mask)
    edge = tuple(max(0, c - 60) for c in COLOURS[colour])
    outline = ImageDraw.Draw(img)
    for kind, pts in shapes:
        if kind == "poly":
            outline.line(pts + [pts[0]], fill=edge, width=max(1, int(2 * s)))
    return img


def _outline(article_type: str) -> list[tuple[str, list[tuple[float, float]]]]:
    if article_type == "Tshirts":
        return [("poly", [(70, 40), (95, 32), (129, 32), (154, 40), (192, 78), (170, 100), (154, 86), (154, 190),
                          (70, 190), (70, 86), (54, 100), (32, 78)])]
    if article_type == "Jackets":
        return [("poly", [(72, 36), (100, 28), (124, 28), (152, 36), (186, 80), (190, 196), (162, 196), (158, 92),
                          (156, 196), (68, 196), (66, 92), (62, 196), (34, 196), (38, 80)])]
    if article_type == "Dresses":
        return [("poly", [(90, 24), (134, 24), (140, 80), (184, 204), (40, 204), (84, 80)])]
    if article_type == "Trousers":
        return [("poly", [(72, 24), (152, 24), (164, 204), (126, 204), (112, 86), (98, 204), (60, 204)])]
    if article_type == "Skirts":
        return [("poly", [(80, 60), (144, 60), (180, 170), (44, 170)])]
    if article_type == "Casual Shoes":
        return [("poly", [(30, 150), (70, 110), (110, 112), (130, 135), (190, 145), (196, 170), (30, 170)])]
    if article_type == "Handbags":
        return [("poly", [(50, 90), (174, 90), (186, 190), (38, 190)]), ("ellipse", [(78, 40), (146, 110)])]
    if article_type == "Caps":
        return [("ellipse", [(56, 70), (168, 170)]), ("poly", [(110, 130), (200, 128), (204, 146), (110, 150)])]
    raise ValueError(f"unknown article type {article_type!r}")


def _fabric(rgb: tuple[int, int, int], pattern: str, size: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (size, size), rgb)
    draw = ImageDraw.Draw(img)
    accent = tuple(255 - c if sum(rgb) < 240 else min(255, c + 90) for c in rgb) if pattern != "Solid" else rgb
    step = rng.choice((14, 18, 22))
    if pattern == "Striped":
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + step // 3], fill=accent)
    elif pattern == "Polka Dot":
        for y in range(step // 2, size, step):
            for x in range((y // step % 2) * step // 2, size, step):
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=accent)
    elif pattern == "Checked":
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + 2], fill=accent)
        for x in range(0, size, step):
            draw.rectangle([x, 0, x + 2, size], fill=accent)
    return img


def demo_items(limit: int | None = None, seed: int = 7) -> Iterator[DemoItem]:
    """Every garment type in every colour and pattern: 8 × 12 × 4 = 384 products with metadata."""
    rng = random.Random(seed)
    combos = list(itertools.product(GARMENTS, COLOURS, PATTERNS))
    for n, (article_type, colour, pattern) in enumerate(combos[:limit]):
        category, subcategory, genders, noun = GARMENTS[article_type]
        gender = rng.choice(genders)
        title = f"{colour} {pattern.lower()} {noun.lower()}" if pattern != "Solid" else f"{colour} {noun.lower()}"
        yield DemoItem(
            id=f"demo-{n:04d}",
            image=garment_picture(article_type, colour, pattern, seed=seed * 1000 + n),
            metadata={"name": title[0].upper() + title[1:], "category": category, "subcategory": subcategory,
                      "article_type": article_type, "colour": colour, "pattern": pattern, "gender": gender,
                      "season": rng.choice(SEASONS)},
        )


# -- the tiny CLIP ---------------------------------------------------------------------------------------------
def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (transformers 5 no longer exports the helper)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


VIT_B32 = dict(image_size=224, patch_size=32, dim=512, vision=(768, 3072, 12, 12), text=(512, 2048, 12, 8))


def save_tiny_clip(out_dir: str | Path, *, image_size: int = 32, dim: int = 64, seed: int = 0) -> Path:
    """A small random CLIP (model + processor) written with save_pretrained: a stand-in for the real checkpoint."""
    return save_random_clip(out_dir, image_size=image_size, patch_size=8, dim=dim, vision=(48, 96, 2, 2),
                            text=(48, 96, 2, 2), seed=seed)


def save_random_clip(out_dir: str | Path, *, image_size: int, patch_size: int, dim: int,
                     vision: tuple[int, int, int, int], text: tuple[int, int, int, int], seed: int = 0) -> Path:
    """A random CLIP of any size; `vision`/`text` are (width, mlp width, layers, heads). VIT_B32 gives real timings."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": 256 + i for i, ch in enumerate(alphabet)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    tok_dir = out / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab_file=str(tok_dir / "vocab.json"), merges_file=str(tok_dir / "merges.txt"))
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=text[0], intermediate_size=text[1],
                         num_hidden_layers=text[2], num_attention_heads=text[3], max_position_embeddings=77,
                         bos_token_id=512, eos_token_id=513, pad_token_id=513),
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=vision[0],
                           intermediate_size=vision[1], num_hidden_layers=vision[2], num_attention_heads=vision[3]),
        projection_dim=dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    model.save_pretrained(out)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return out
