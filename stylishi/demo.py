"""The offline demo: a generated catalog of 1,200 garment pictures and a tiny CLIP trained on pictures like them.

Everything is drawn on the spot (no network): 12 article types in 10 colours and 4 patterns, each product a
different pose (scale, position, rotation, proportions), backdrop and lighting. The model is not random: a tiny
CLIP trained contrastively on *other* generated garments and camera-like shots of them
(`scripts/train_demo_model.py`), shipped as safetensors in `data/demo_model/` and copied into each demo index.

Seeds (so that a held-out query is never a copy of a catalog picture, nor of anything the model trained on):
each picture is drawn from one integer seed, and the three uses live in separate ranges of `SEEDS`:
catalog pictures and their metadata use `SEEDS["catalog"] + n`, training `SEEDS["training"] + ...`, held-out
evaluation and test queries (pictures and camera shots) `SEEDS["heldout"] + ...`. Each range holds < 1,000,000 seeds.
"""
from __future__ import annotations

import functools
import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from .catalog import sha256_file

SEEDS = {"catalog": 1_000_000, "training": 2_000_000, "heldout": 3_000_000}
# 1: 384 pictures, random tiny CLIP; 2: 1,200 pictures, trained model; 3: retrained on camera shots; 4: trained
# twice as long (16,000 steps); 5: the % match calibrated on photo queries focused on their garment (stylishi.focus);
# 6: the model trained 8,000 steps more on twice the garments (scripts/make_demo_model.sh)
DEMO_VERSION = 6
MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "demo_model"  # the shipped, trained tiny CLIP
CHECKSUMS = "SHA256SUMS"

COLOURS = {
    "Black": (28, 28, 30), "White": (236, 236, 232), "Grey": (128, 128, 132), "Red": (200, 30, 40),
    "Pink": (240, 135, 185), "Yellow": (242, 204, 30), "Green": (40, 150, 60), "Blue": (40, 95, 215),
    "Purple": (120, 50, 165), "Brown": (120, 74, 38),
    # not in the catalog, kept for pictures drawn elsewhere (tests, probes)
    "Navy Blue": (20, 30, 90), "Orange": (245, 130, 30), "Beige": (215, 190, 150),
}
CATALOG_COLOURS = ("Black", "White", "Grey", "Red", "Pink", "Yellow", "Green", "Blue", "Purple", "Brown")
PATTERNS = ("Solid", "Striped", "Polka Dot", "Checked")
# article type → (category, subcategory, genders, display noun, usages)
GARMENTS = {
    "Tshirts": ("Apparel", "Topwear", ("Men", "Women", "Unisex"), "T-shirt", ("Casual", "Sports")),
    "Tops": ("Apparel", "Topwear", ("Women",), "Top", ("Casual", "Party")),
    "Jackets": ("Apparel", "Topwear", ("Men", "Women"), "Jacket", ("Casual", "Formal")),
    "Dresses": ("Apparel", "Dress", ("Women",), "Dress", ("Casual", "Party", "Formal")),
    "Skirts": ("Apparel", "Bottomwear", ("Women",), "Skirt", ("Casual", "Formal")),
    "Trousers": ("Apparel", "Bottomwear", ("Men", "Women"), "Trousers", ("Casual", "Formal")),
    "Shorts": ("Apparel", "Bottomwear", ("Men", "Women", "Unisex"), "Shorts", ("Casual", "Sports")),
    "Casual Shoes": ("Footwear", "Shoes", ("Men", "Women", "Unisex"), "Shoes", ("Casual", "Sports")),
    "Heels": ("Footwear", "Shoes", ("Women",), "Heels", ("Party", "Formal")),
    "Handbags": ("Accessories", "Bags", ("Women",), "Handbag", ("Casual", "Formal")),
    "Backpacks": ("Accessories", "Bags", ("Men", "Women", "Unisex"), "Backpack", ("Casual", "Sports")),
    "Caps": ("Accessories", "Headwear", ("Men", "Women", "Unisex"), "Cap", ("Casual", "Sports")),
}
SEASONS = ("Summer", "Winter", "Spring", "Fall")
PER_COMBINATION = 10  # products per (article type, colour): enough for a precision@10 of both to mean something
SIZE = 224


@dataclass
class DemoItem:
    id: str
    image: Image.Image
    metadata: dict


# -- drawing ---------------------------------------------------------------------------------------------------
Shape = tuple[str, list[tuple[float, float]]]  # ("poly" | "ellipse" | "hole" | "line", points)


def garment_picture(article_type: str, colour: str, pattern: str, seed: int = 0, size: int = SIZE) -> Image.Image:
    """A product shot: one garment in a colour and a pattern, in a pose, on a plain backdrop, in some light.

    The seed decides everything that varies between products of the same kind: proportions, scale, position,
    rotation, the pattern's spacing, the backdrop's tint and the lighting.
    """
    rng = random.Random(seed)
    s = size / 224.0
    scale = rng.uniform(0.72, 1.0)
    angle = math.radians(rng.uniform(-8, 8))
    dx, dy = rng.uniform(-18, 18) * (1.05 - scale) / 0.33, rng.uniform(-18, 18) * (1.05 - scale) / 0.33
    cos, sin = math.cos(angle), math.sin(angle)

    def place(pts):
        out = []
        for x, y in pts:
            x, y = x + rng.uniform(-3, 3) - 112, y + rng.uniform(-3, 3) - 112
            out.append((((x * cos - y * sin) * scale + 112 + dx) * s, ((x * sin + y * cos) * scale + 112 + dy) * s))
        return out

    shapes = [(kind, place(pts)) for kind, pts in _outline(article_type, rng)]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for kind, pts in shapes:
        if kind == "poly":
            draw.polygon(pts, fill=255)
        elif kind == "ellipse":
            draw.ellipse(_box(pts), fill=255)
        elif kind == "hole":
            draw.ellipse(_box(pts), fill=0)
    rgb = COLOURS[colour]
    fabric = _fabric(rgb, pattern, size, rng.choice((12, 15, 18, 22)), rng.random() < 0.7, rng.randint(2, 4))
    tint = rng.randint(238, 252)
    backdrop = (tint + rng.randint(-3, 3), tint + rng.randint(-3, 3), tint + rng.randint(-4, 2))
    img = Image.new("RGB", (size, size), backdrop)
    img.paste(fabric, (0, 0), mask)
    edge = tuple(max(0, int(c * 0.55)) for c in rgb) if sum(rgb) > 120 else (90, 90, 95)
    outline = ImageDraw.Draw(img)
    width = max(1, int(2 * s))
    for kind, pts in shapes:
        if kind == "poly":
            outline.line(pts + [pts[0]], fill=edge, width=width)
        elif kind == "line":
            outline.line(pts, fill=edge, width=width)
        elif kind in ("ellipse", "hole"):
            outline.ellipse(_box(pts), outline=edge, width=width)
    # Lighting: an overall exposure and a soft gradient from one side.
    gain = rng.uniform(0.9, 1.06)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    light = gain + rng.uniform(0.0, 0.06) * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None])
    arr = np.asarray(img, dtype=np.float32) * light[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _box(pts):
    (x0, y0), (x1, y1) = pts[0], pts[1]
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def _outline(article_type: str, rng: random.Random) -> list[Shape]:
    """The garment's silhouette in a 224-px frame, with its own proportions (sleeves, length, heel...)."""
    u = rng.uniform
    if article_type == "Tshirts":
        sl = u(-6, 10)  # sleeve length
        return [("poly", [(70, 40), (96, 32), (112, 42), (128, 32), (154, 40), (192 + sl * .5, 78 + sl), (170, 100 + sl),
                          (154, 86), (154, 190), (70, 190), (70, 86), (54, 100 + sl), (32 - sl * .5, 78 + sl)])]
    if article_type == "Tops":
        w = u(-6, 8)
        return [("poly", [(86, 26), (96, 26), (100, 58), (124, 58), (128, 26), (138, 26), (150 + w, 76), (148 + w, 196),
                          (76 - w, 196), (74 - w, 76)])]
    if article_type == "Jackets":
        ln = u(-8, 6)
        return [("poly", [(72, 36), (100, 28), (112, 50), (124, 28), (152, 36), (186, 80), (192, 196 + ln),
                          (164, 196 + ln), (158, 92), (156, 198 + ln), (68, 198 + ln), (66, 92), (60, 196 + ln),
                          (32, 196 + ln), (38, 80)]),
                ("line", [(112, 50), (112, 198 + ln)]), ("line", [(100, 28), (104, 70), (112, 50)]),
                ("line", [(124, 28), (120, 70), (112, 50)])]
    if article_type == "Dresses":
        hem, flare = u(170, 208), u(-10, 14)
        return [("poly", [(92, 18), (100, 18), (102, 40), (122, 40), (124, 18), (132, 18), (138, 84),
                          (182 + flare, hem), (42 - flare, hem), (86, 84)])]
    if article_type == "Skirts":
        hem, flare = u(140, 186), u(-8, 12)
        return [("poly", [(78, 56), (146, 56), (178 + flare, hem), (46 - flare, hem)]), ("line", [(78, 66), (146, 66)])]
    if article_type == "Trousers":
        w = u(-6, 8)
        return [("poly", [(72, 22), (152, 22), (164 + w, 206), (124, 206), (112, 84), (100, 206), (60 - w, 206)]),
                ("line", [(72, 32), (152, 32)])]
    if article_type == "Shorts":
        ln = u(-10, 14)
        return [("poly", [(66, 60), (158, 60), (172, 150 + ln), (120, 156 + ln), (112, 108), (104, 156 + ln),
                          (52, 150 + ln)]), ("line", [(66, 70), (158, 70)])]
    if article_type == "Casual Shoes":
        h = u(-8, 8)
        return [("poly", [(28, 152), (40, 118 + h), (74, 108 + h), (104, 112), (126, 134), (184, 142), (198, 158),
                          (196, 172), (28, 172)]), ("line", [(30, 160), (196, 160)]),
                ("line", [(80, 116 + h), (96, 132)])]
    if article_type == "Heels":
        hh = u(-10, 8)
        return [("poly", [(34, 96 + hh), (58, 92 + hh), (96, 128), (150, 142), (190, 150), (196, 162), (150, 166),
                          (96, 156), (64, 138), (58, 186), (48, 186), (40, 130)])]
    if article_type == "Handbags":
        top = u(-8, 8)
        return [("ellipse", [(76, 36 + top), (148, 124)]), ("hole", [(88, 48 + top), (136, 120)]),
                ("poly", [(48, 96 + top * .3), (176, 96 + top * .3), (188, 194), (36, 194)]),
                ("line", [(48, 116), (176, 116)])]
    if article_type == "Backpacks":
        w = u(-6, 8)
        return [("ellipse", [(96, 26), (128, 52)]), ("hole", [(102, 32), (122, 48)]),
                ("poly", [(70 - w, 48), (154 + w, 48), (170 + w, 74), (172 + w, 200), (52 - w, 200), (54 - w, 74)]),
                ("line", [(74, 132), (150, 132), (150, 186), (74, 186), (74, 132)])]
    if article_type == "Caps":
        b = u(-8, 10)
        return [("ellipse", [(56, 70), (168, 172)]), ("poly", [(112, 128), (200 + b, 126), (206 + b, 146), (112, 152)]),
                ("line", [(112, 72), (112, 128)])]
    raise ValueError(f"unknown article type {article_type!r}; the demo draws {', '.join(GARMENTS)}")


@functools.lru_cache(maxsize=512)
def _fabric(rgb: tuple[int, int, int], pattern: str, size: int, step: int, horizontal: bool, dot: int) -> Image.Image:
    """The cloth: its colour, with a pattern in a shade of the same colour (so the colour stays the colour)."""
    img = Image.new("RGB", (size, size), rgb)
    if pattern == "Solid":
        return img
    draw = ImageDraw.Draw(img)
    light = sum(rgb) > 450
    accent = tuple(int(c * 0.45) for c in rgb) if light else tuple(int(c + (255 - c) * 0.6) for c in rgb)
    if sum(rgb) < 120:  # black: a grey accent
        accent = (150, 150, 155)
    if pattern == "Striped":
        for v in range(0, size, step):
            draw.rectangle([0, v, size, v + step // 3] if horizontal else [v, 0, v + step // 3, size], fill=accent)
    elif pattern == "Polka Dot":
        for y in range(step // 2, size, step):
            for x in range((y // step % 2) * step // 2, size, step):
                draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=accent)
    elif pattern == "Checked":
        for v in range(0, size, step):
            draw.rectangle([0, v, size, v + 2], fill=accent)
            draw.rectangle([v, 0, v + 2, size], fill=accent)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; the demo draws {', '.join(PATTERNS)}")
    return img


# -- the catalog -----------------------------------------------------------------------------------------------
def item_metadata(article_type: str, colour: str, pattern: str, rng: random.Random) -> dict:
    """A product's metadata, in the columns of the Fashion Product Images dataset (renamed as the builder does)."""
    category, subcategory, genders, noun, usages = GARMENTS[article_type]
    noun = noun.lower()
    name = f"{colour} {pattern.lower()} {noun}" if pattern != "Solid" else f"{colour} {noun}"
    return {"name": name, "category": category, "subcategory": subcategory, "article_type": article_type,
            "colour": colour, "pattern": pattern, "gender": rng.choice(genders), "season": rng.choice(SEASONS),
            "usage": rng.choice(usages)}


def catalog_specs() -> list[tuple[str, str, str]]:
    """(article type, colour, pattern) of each catalog item, in id order: every type in every catalog colour,
    PER_COMBINATION products each, the patterns taking turns."""
    return [(t, c, PATTERNS[k % len(PATTERNS)]) for t in GARMENTS for c in CATALOG_COLOURS
            for k in range(PER_COMBINATION)]


def demo_items(limit: int | None = None) -> Iterator[DemoItem]:
    """The 12 × 10 × 10 = 1,200 products of the offline demo, with metadata; item n is drawn from seed
    SEEDS["catalog"] + n."""
    for n, (article_type, colour, pattern) in enumerate(catalog_specs()[:limit]):
        seed = SEEDS["catalog"] + n
        yield DemoItem(id=f"demo-{n:04d}", image=garment_picture(article_type, colour, pattern, seed=seed),
                       metadata=item_metadata(article_type, colour, pattern, random.Random(seed)))


# -- the shipped, trained model --------------------------------------------------------------------------------
def is_current_demo(manifest: dict) -> bool:
    """Whether an index's manifest is this version's offline demo (a cached older demo should be rebuilt)."""
    source = manifest.get("source") or {}
    return source.get("kind") == "offline-demo" and source.get("demo_version") == DEMO_VERSION


def copy_demo_model(out_dir: str | Path, source: str | Path = MODEL_DIR) -> Path:
    """Copy the shipped demo model (weights, tokenizer, config) to `out_dir`, after checking its checksums."""
    source, out = Path(source), Path(out_dir)
    verify_checksums(source)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for line in (source / CHECKSUMS).read_text().splitlines():
        name = line.split(maxsplit=1)[1].strip()
        shutil.copy2(source / name, out / name)
    shutil.copy2(source / CHECKSUMS, out / CHECKSUMS)
    return out


def write_checksums(folder: str | Path) -> Path:
    """`SHA256SUMS` (sha256sum's format) for every file of a model folder."""
    folder = Path(folder)
    lines = [f"{sha256_file(p)}  {p.name}" for p in sorted(folder.iterdir()) if p.is_file() and p.name != CHECKSUMS]
    path = folder / CHECKSUMS
    path.write_text("\n".join(lines) + "\n")
    return path


def verify_checksums(folder: str | Path) -> None:
    """Refuse a damaged or missing demo model, naming the fix."""
    from .errors import ModelError

    folder = Path(folder)
    sums = folder / CHECKSUMS
    if not sums.is_file():
        raise ModelError(f"The offline demo's model is missing ({sums} not found). Restore data/demo_model/ from the "
                         "repository, or retrain it with: python scripts/train_demo_model.py")
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = folder / name.strip()
        if not path.is_file() or sha256_file(path) != digest:
            raise ModelError(f"The offline demo's model file {path} is missing or damaged (sha256 differs from "
                             f"{CHECKSUMS}). Restore data/demo_model/ from the repository (git checkout -- "
                             "data/demo_model), or retrain it with: python scripts/train_demo_model.py")


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
