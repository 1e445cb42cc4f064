#!/usr/bin/env python
"""Train the offline demo's tiny CLIP and write it to data/demo_model/ (weights, tokenizer, config, SHA256SUMS).

    bash scripts/make_demo_model.sh               # the shipped model: two runs of this script, seeded; ~2 h on 2 cores
    python scripts/train_demo_model.py            # its first run alone (16,000 steps from a fresh model; ~70 min)
    python scripts/train_demo_model.py --steps 5 --pool 64 --out /tmp/m --no-eval   # a smoke run, seconds
    python scripts/train_demo_model.py --init DIR --pool 16000 --lr 1e-3 --clean-steps 0 --ramp-steps 1 --steps 8000
                                                  # go on training a saved model on twice the garments (the second run)

What it learns from: 8,000 garments drawn by `stylishi.demo.garment_picture` from the *training* seed range (never
the catalog's or the held-out queries'), each as a clean product shot and three camera-like shots
(`stylishi.camera.camera_shot`), paired with captions made from its attributes ("red striped dress", "dresses",
"red dress for women", "checked skirt"...). The losses: CLIP's symmetric contrastive loss with multi-positive
targets (a caption is right for every item it describes, so "dresses" is not a negative for the other dresses); an
image-to-image term (a camera shot must find its own clean picture); and cosine prototypes of article type (×3),
colour and pattern in the embedding space, thrown away afterwards, which pull every view of a kind together.
Batches are hard negatives: 8 (colour, pattern) pairs with 8 article types each, so colour and pattern alone cannot
tell a batch apart. A curriculum: clean pictures only for the first 600 steps (the shapes), then camera shots come
in over 2,400 steps up to 90 % of the second views (finding the garment in a room). What it cost to get here, and
what did not work (a camera shot from the start, 1,500-3,000 steps, a wider tower, 128-px input), is in the README.
The tokenizer is a small BPE trained on the captions' words with the `tokenizers` library, in CLIP's format
(byte alphabet, `</w>` word ends): every catalog word is one token; an unknown word falls back to its letters.

At the end it measures the model on the demo catalog with held-out camera shots and prints the table.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


from stylishi.camera import camera_shot
from stylishi.demo import (CATALOG_COLOURS, GARMENTS, MODEL_DIR, PATTERNS, SEEDS, garment_picture,
                           item_metadata, write_checksums)

log = logging.getLogger("train_demo_model")

IMAGE_SIZE, PATCH, DIM = 96, 16, 64
VISION = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4)
TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
CONTEXT = 32
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # CLIP's normalisation
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

# Words a shopper may use for each attribute value (the first is the plain one).
TYPE_WORDS = {
    "Tshirts": ["t-shirt", "tshirt", "tee", "tshirts", "t-shirts"], "Tops": ["top", "tank top", "tops"],
    "Jackets": ["jacket", "jackets"], "Dresses": ["dress", "dresses"], "Skirts": ["skirt", "skirts"],
    "Trousers": ["trousers", "pants"], "Shorts": ["shorts"],
    "Casual Shoes": ["shoes", "casual shoes", "sneakers", "trainers"], "Heels": ["heels", "high heels", "pumps"],
    "Handbags": ["handbag", "bag", "handbags", "purse"], "Backpacks": ["backpack", "backpacks", "rucksack"],
    "Caps": ["cap", "caps", "baseball cap", "hat"],
}
COLOUR_WORDS = {c: [c.lower()] for c in CATALOG_COLOURS}
COLOUR_WORDS["Grey"] = ["grey", "gray"]
PATTERN_WORDS = {"Solid": ["solid", "plain"], "Striped": ["striped", "stripes"], "Polka Dot": ["polka dot", "dotted"],
                 "Checked": ["checked", "checkered", "plaid"]}
GENDER_WORDS = {"Men": ["for men", "men's"], "Women": ["for women", "women's"], "Unisex": ["unisex"]}
CATEGORY_WORDS = {"Apparel": ["clothes", "apparel"], "Footwear": ["footwear"], "Accessories": ["accessories"]}


# -- captions and tokenizer -------------------------------------------------------------------------------------
def caption(meta: dict, rng: random.Random) -> tuple[str, dict]:
    """One caption for an item and the attributes it asserts (it describes every item that has them)."""
    t, c, p = meta["article_type"], meta["colour"], meta["pattern"]
    noun = rng.choice(TYPE_WORDS[t])
    col = rng.choice(COLOUR_WORDS[c])
    pat = rng.choice(PATTERN_WORDS[p])
    form = rng.random()
    if form < 0.22:
        return f"{col} {noun}", {"article_type": t, "colour": c}
    if form < 0.42:
        return f"{col} {pat} {noun}", {"article_type": t, "colour": c, "pattern": p}
    if form < 0.54:
        return noun, {"article_type": t}
    if form < 0.62:
        return f"{col} {t.lower()}", {"article_type": t, "colour": c}
    if form < 0.70:
        return f"{pat} {noun}", {"article_type": t, "pattern": p}
    if form < 0.78:
        g = meta["gender"]
        words = rng.choice(GENDER_WORDS[g])
        text = f"{col} {noun} {words}" if words.startswith("for") or words == "unisex" else f"{words} {col} {noun}"
        return text, {"article_type": t, "colour": c, "gender": g}
    if form < 0.84:
        return meta["name"].lower(), {"article_type": t, "colour": c, "pattern": p}
    if form < 0.90:
        return f"{col} {rng.choice(CATEGORY_WORDS[meta['category']])}", {"category": meta["category"], "colour": c}
    if form < 0.95:
        return f"{col} {pat}", {"colour": c, "pattern": p}
    return col, {"colour": c}


def caption_words() -> list[str]:
    """Every word the captions can use (the tokenizer's training text)."""
    texts = []
    for table in (TYPE_WORDS, COLOUR_WORDS, PATTERN_WORDS, GENDER_WORDS, CATEGORY_WORDS):
        for words in table.values():
            texts += words
    texts += [t.lower() for t in GARMENTS] + [c.lower() for c in ("Navy Blue", "Orange", "Beige", "White")]
    texts += ["a photo of", "clothing", "product", "shoe", "shirt", "for kids", "casual", "formal", "sports",
              "party", "summer", "winter", "spring", "fall", "topwear", "bottomwear", "bags", "headwear"]
    return texts


def train_tokenizer(out_dir: Path):
    """A small BPE in CLIP's format: 256 byte symbols (+ their `</w>` forms), merges for the captions' words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    from stylishi.demo import _byte_alphabet

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=4000, min_frequency=1, end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(caption_words() * 4, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        merges = [line for line in Path(tmp, "merges.txt").read_text().splitlines()
                  if line and not line.startswith("#")]
    alphabet = _byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": 256 + i for i, ch in enumerate(alphabet)})
    kept = []
    for line in merges:
        a, b = line.split()
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            kept.append(line)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(kept) + "\n")
    # transformers 5 takes the vocabulary and merges themselves (file names would silently give a vocabulary of 2)
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in kept], model_max_length=CONTEXT)


# -- training pictures ------------------------------------------------------------------------------------------
def to_array(img, size: int | None = None) -> np.ndarray:
    """Resize the short side and centre-crop, as the CLIP processor does; uint8 HWC."""
    from PIL import Image

    size = size or IMAGE_SIZE
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)).convert("RGB"), dtype=np.uint8)


SHOTS = 3  # camera shots drawn per training garment


def shot_sizes() -> list[tuple[int, int]]:
    """A webcam's frame (as evaluated), then cheaper smaller frames a little above the model's input size."""
    small = (IMAGE_SIZE * 5 // 3, IMAGE_SIZE * 5 // 4)
    return [(320, 240)] + [small] * (SHOTS - 1)


def training_item(i: int) -> tuple[dict, np.ndarray]:
    """Training item i: its metadata and [clean, shot, shot, shot] pictures, all from the training seed range."""
    seed = SEEDS["training"] + i
    rng = random.Random(seed)
    t, c, p = rng.choice(list(GARMENTS)), rng.choice(CATALOG_COLOURS), rng.choice(PATTERNS)
    meta = item_metadata(t, c, p, rng)
    picture = garment_picture(t, c, p, seed=seed)
    views = [to_array(picture)]
    for k, size in enumerate(shot_sizes()):
        shot = camera_shot(picture, random.Random(SEEDS["training"] + 500_000 + SHOTS * i + k), size=size)
        views.append(to_array(shot))
    return meta, np.stack(views)


POOL_CHUNK = 8000  # training items per cached file (a larger pool reuses the files of a smaller one)


def make_pool(n: int, workers: int, cache: str | None = None, size: int | None = None) -> tuple[list[dict], np.ndarray]:
    """Training items 0..n-1, drawn (or read back from --pool-cache) in chunks of POOL_CHUNK."""
    metas, views = [], []
    for start in range(0, n, POOL_CHUNK):
        m, v = _pool_chunk(start, min(POOL_CHUNK, n - start), workers, cache, size)
        metas += m
        views.append(v)
    return metas, np.concatenate(views)


def _pool_chunk(start: int, n: int, workers: int, cache: str | None, size: int | None):
    t0 = time.perf_counter()
    name = f"{n}" if start == 0 else f"{start}+{n}"
    path = Path(cache) / f"pool-v2-{name}-{size or IMAGE_SIZE}-{SHOTS}shots.npz" if cache else None  # v2: room-like
    if path and path.exists():
        data = np.load(path, allow_pickle=False)
        return json.loads(str(data["metas"])), data["views"]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(training_item, range(start, start + n), chunksize=64)
    else:
        out = [training_item(i) for i in range(start, start + n)]
    log.info("drew %d training items (%d pictures) in %.0f s", n, (1 + SHOTS) * n, time.perf_counter() - t0)
    metas, views = [m for m, _ in out], np.stack([v for _, v in out])
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, metas=json.dumps(metas), views=views)
    return metas, views


# -- the model --------------------------------------------------------------------------------------------------
def new_model(tokenizer, seed: int):
    import torch
    from transformers import CLIPConfig, CLIPModel

    vocab = len(tokenizer)
    bos, eos = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, max_position_embeddings=CONTEXT, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos, **TEXT),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=PATCH, **VISION),
        projection_dim=DIM,
    )
    torch.manual_seed(seed)
    return CLIPModel(config)


def features(out):
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


def batch_indices(groups: dict, metas: list[dict], rng: random.Random, n_groups: int, per_group: int) -> list[int]:
    """Hard negatives: a few (colour, pattern) pairs, several article types in each."""
    chosen = []
    for key in rng.sample(sorted(groups), n_groups):
        by_type = groups[key]
        for t in rng.sample(sorted(by_type), min(per_group, len(by_type))):
            chosen.append(rng.choice(by_type[t]))
    return chosen


def soft_ce(logits, targets):
    import torch

    targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-9)
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def save(model, tokenizer, out: Path, record: dict) -> None:
    """The model, its processor (tokenizer + picture sizes), how it was made, and SHA256SUMS."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.is_file():
            f.unlink()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                           crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer)
    processor.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    write_checksums(out)
    model.train()


def train(args) -> Path:
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="demo_model_"))
    if args.init:  # go on from a saved model (its weights and tokenizer); the prototypes start afresh
        from transformers import CLIPModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(args.init)
        model = CLIPModel.from_pretrained(args.init)
    else:
        tokenizer = train_tokenizer(work / "tok")
        model = new_model(tokenizer, args.seed)
    metas, views = make_pool(args.pool, args.workers, args.pool_cache, args.pool_size or IMAGE_SIZE)
    groups: dict = {}
    for i, m in enumerate(metas):
        groups.setdefault((m["colour"], m["pattern"]), {}).setdefault(m["article_type"], []).append(i)
    keys = ("article_type", "colour", "pattern")
    labels = torch.tensor([[list(GARMENTS).index(m["article_type"]), CATALOG_COLOURS.index(m["colour"]),
                            PATTERNS.index(m["pattern"])] for m in metas])
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    # Cosine-classifier prototypes for article type, colour and pattern in the embedding space (thrown away after
    # training): they pull every view of a kind together, which the captions alone do slowly.
    torch.manual_seed(args.seed)
    heads = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(n, DIM) * 0.1)
                                    for n in (len(GARMENTS), len(CATALOG_COLOURS), len(PATTERNS))])
    opt = torch.optim.AdamW(list(model.parameters()) + list(heads.parameters()), lr=args.lr, weight_decay=0.05)
    warm = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    kind_weights = [float(w) for w in args.kind_weights.split(",")]
    rng = random.Random(args.seed)
    n_groups = min(args.groups, len(groups))
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        idx = batch_indices(groups, metas, rng, n_groups, args.per_group)
        b = len(idx)
        # clean pictures first (the garments' shapes), then camera shots rising to --shot-prob over --ramp-steps
        ramp = min(1.0, max(0.0, (step - args.clean_steps + 1) / max(1, args.ramp_steps)))
        shot_pick = [rng.randint(1, SHOTS) if rng.random() < args.shot_prob * ramp else 0 for _ in idx]
        pics = np.concatenate([views[idx, 0], views[idx, shot_pick]])
        x = torch.from_numpy(pics).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] != IMAGE_SIZE:  # a pool drawn for a larger input
            x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", antialias=True)
        x = (x - mean) / std
        flip = torch.tensor([rng.random() < 0.5 for _ in range(len(pics))]).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)  # a garment seen from its other side is the same garment
        caps = [caption(metas[i], rng) for i in idx]
        enc = tokenizer([c for c, _ in caps], return_tensors="pt", padding=True, truncation=True, max_length=CONTEXT)
        img = torch.nn.functional.normalize(features(model.get_image_features(pixel_values=x)), dim=-1)
        txt = torch.nn.functional.normalize(
            features(model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        # caption j describes item i when i has every attribute j asserts
        describes = torch.tensor([[all(metas[i][k] == v for k, v in attrs.items()) for _, attrs in caps]
                                  for i in idx], dtype=torch.float32)
        both = torch.cat([describes, describes])  # clean and shot views alike
        logits = scale * img @ txt.T
        loss_it = 0.5 * (soft_ce(logits, both) + soft_ce(logits.T, both.T))
        # a shot finds its own clean picture (and, less, the pictures of the same kind)
        lab = labels[idx]
        same = (lab[:, None, :] == lab[None, :, :])
        kin = same.all(-1).float() * 0.3 + (same[..., 0] & same[..., 1]).float() * 0.1
        target = torch.eye(b) + kin * (1 - torch.eye(b))
        ii = scale * img[b:] @ img[:b].T
        loss_ii = 0.5 * (soft_ce(ii, target) + soft_ce(ii.T, target.T))
        both_lab = torch.cat([lab, lab])
        head_logits = [16.0 * img @ torch.nn.functional.normalize(w, dim=-1).T for w in heads]
        loss_aux = sum(kind_weights[a] * torch.nn.functional.cross_entropy(lg, both_lab[:, a])
                       for a, lg in enumerate(head_logits)) / sum(kind_weights)
        loss = loss_it + args.image_weight * loss_ii + args.aux_weight * loss_aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            save(model, tokenizer, Path(f"{out}-step{step}"), {"step": step})
        if step % 25 == 0 or step == args.steps - 1:
            acc = [round(float((lg[b:].argmax(1) == lab[:, a]).float().mean()), 2) for a, lg in enumerate(head_logits)]
            log.info("step %d/%d loss %.3f (text %.3f, image %.3f, kinds %.3f) shot acc t/c/p %s scale %.1f  %.0f s",
                     step, args.steps, loss.item(), loss_it.item(), loss_ii.item(), loss_aux.item(), acc,
                     scale.item(), time.perf_counter() - t0)
    save(model, tokenizer, out, {
        "command": "python scripts/train_demo_model.py " + " ".join(sys.argv[1:]), "seed": args.seed,
        "steps": args.steps, "pool": args.pool, "batch": n_groups * args.per_group, "lr": args.lr,
        "aux_weight": args.aux_weight, "kind_weights": args.kind_weights, "image_weight": args.image_weight,
        "clean_steps": args.clean_steps, "shot_prob": args.shot_prob, "ramp_steps": args.ramp_steps,
        "image_size": IMAGE_SIZE, "patch": PATCH, "dim": DIM, "vision": VISION, "text": TEXT,
        "seconds": round(time.perf_counter() - t0), "seed_range": SEEDS["training"],
        "init": _init_record(args.init)})
    log.info("wrote %s", out)
    return out


def _init_record(init: str | None) -> dict | None:
    """How the model this run went on from was made (its TRAINING.json), so the chain is on record."""
    if not init:
        return None
    path = Path(init) / "TRAINING.json"
    return {"from": str(init), **(json.loads(path.read_text()) if path.exists() else {})}


# -- a quick measurement on the demo catalog --------------------------------------------------------------------
def measure(model_dir: Path, queries: int = 300) -> dict:
    """Held-out measurements on the real demo catalog, through the production Embedder."""
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder

    emb = Embedder.load(model_dir, device="cpu", mode="fp32")
    items = list(demo_items())
    meta = [it.metadata for it in items]
    vecs = np.concatenate([emb.embed_images([it.image for it in items[i:i + 64]]) for i in range(0, len(items), 64)])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :10]
    types = np.array([m["article_type"] for m in meta])
    colours = np.array([m["colour"] for m in meta])
    result = {"type_p10": float((types[top] == types[:, None]).mean()),
              "colour_p10": float((colours[top] == colours[:, None]).mean())}
    rng = random.Random(SEEDS["heldout"])
    picks = rng.sample(range(len(items)), queries)
    shots = [camera_shot(items[i].image, random.Random(SEEDS["heldout"] + 1 + i)) for i in picks]
    q = np.concatenate([emb.embed_images(shots[i:i + 64]) for i in range(0, len(shots), 64)])
    ranks = np.argsort(-(q @ vecs.T), axis=1)[:, :10]
    result["camera_r10"] = float(np.mean([picks[k] in ranks[k] for k in range(queries)]))
    result["camera_r1"] = float(np.mean([picks[k] == ranks[k][0] for k in range(queries)]))
    result["camera_type_p10"] = float(np.mean([(types[ranks[k]] == types[picks[k]]).mean() for k in range(queries)]))
    texts, want = [], []
    for t in GARMENTS:
        for c in CATALOG_COLOURS:
            texts.append(f"{c} {t}")
            want.append((t, c))
    tv = emb.embed_texts(texts)
    tr = np.argsort(-(tv @ vecs.T), axis=1)[:, :10]
    result["text_colour_type_p10"] = float(np.mean([((types[r] == t) & (colours[r] == c)).mean()
                                                    for r, (t, c) in zip(tr, want)]))
    return result


def main(argv: list[str] | None = None) -> int:
    global IMAGE_SIZE, PATCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(MODEL_DIR), help="where to write the model (default: data/demo_model)")
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--pool", type=int, default=8000, help="training garments drawn (3 pictures each)")
    ap.add_argument("--groups", type=int, default=8, help="(colour, pattern) pairs per batch")
    ap.add_argument("--per-group", type=int, default=8, help="article types per (colour, pattern) pair")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--image-weight", type=float, default=0.5)
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the type/colour/pattern prototypes")
    ap.add_argument("--kind-weights", default="3,1,1", help="relative weights of the type, colour, pattern prototypes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for a model this small)")
    ap.add_argument("--workers", type=int, default=2, help="processes drawing the training pictures")
    ap.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    ap.add_argument("--patch", type=int, default=PATCH)
    ap.add_argument("--width", type=int, default=VISION["hidden_size"], help="the image tower's width")
    ap.add_argument("--layers", type=int, default=VISION["num_hidden_layers"], help="the image tower's depth")
    ap.add_argument("--clean-steps", type=int, default=600, help="first steps on clean product shots only")
    ap.add_argument("--ramp-steps", type=int, default=2400, help="steps over which camera shots come in after that")
    ap.add_argument("--shot-prob", type=float, default=0.9, help="share of second views that are camera shots")
    ap.add_argument("--pool-size", type=int, default=0, help="picture size of a cached pool (default: the input)")
    ap.add_argument("--pool-cache", default=None, help="a folder to keep the drawn training pictures in")
    ap.add_argument("--init", default=None, help="go on training this saved model (a folder made by this script)")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="also save the model every N steps (to OUT-stepN)")
    ap.add_argument("--no-eval", action="store_true", help="skip the measurement on the demo catalog")
    args = ap.parse_args(argv)
    IMAGE_SIZE, PATCH = args.image_size, args.patch
    VISION.update(hidden_size=args.width, intermediate_size=4 * args.width, num_hidden_layers=args.layers)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = train(args)
    if not args.no_eval:
        print(json.dumps(measure(out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
