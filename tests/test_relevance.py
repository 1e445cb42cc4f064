"""Relevance on the offline demo: its trained tiny CLIP finds the right kind of product, not only *a* product.

Queries are held out: example photos and camera-like shots drawn from seeds the catalog and the training never used
(`stylishi.demo.SEEDS`). Also: the camera-like distortion, the demo model's tokenizer and checksums, and a smoke run
of the training script.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylishi.camera import camera_shot
from stylishi.demo import MODEL_DIR, SEEDS, copy_demo_model, garment_picture, verify_checksums
from stylishi.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
# data/examples/ (made by data/make_examples.py) → the article type each shows
EXAMPLE_TYPES = {"red-dress.jpg": "Dresses", "blue-striped-tshirt.jpg": "Tshirts", "black-jacket.jpg": "Jackets",
                 "yellow-handbag.jpg": "Handbags", "green-checked-skirt.jpg": "Skirts", "pink-shoes.jpg": "Casual Shoes"}


def attr(result, key: str) -> str:
    return getattr(result, key, None) or result.metadata.get(key, "")


@pytest.mark.parametrize("name", sorted(EXAMPLE_TYPES))
def test_each_example_photo_finds_its_article_type_in_the_top_5(service, name):
    results = service.search_image(ROOT / "data" / "examples" / name, k=5).results
    assert EXAMPLE_TYPES[name] in [attr(r, "article_type") for r in results], \
        [(r.name, attr(r, "article_type")) for r in results]


@pytest.mark.parametrize("name", sorted(EXAMPLE_TYPES))
def test_each_example_photo_finds_its_colour(service, name):
    """Every example: the top 5 are all of the garment's colour (the file name's)."""
    colour = name.split("-")[0].capitalize()
    results = service.search_image(ROOT / "data" / "examples" / name, k=5).results
    assert [attr(r, "colour") for r in results] == [colour] * 5, [(r.name, attr(r, "colour")) for r in results]


def test_red_dress_returns_red_dresses(service):
    results = service.search_text("red dress", k=5).results
    found = [(attr(r, "colour"), attr(r, "article_type")) for r in results]
    assert found[:3] == [("Red", "Dresses")] * 3, found
    assert sum(f == ("Red", "Dresses") for f in found) >= 4, found


@pytest.mark.parametrize("query, colour, article_type", [("blue pants", "Blue", "Trousers"),
                                                         ("black heels", "Black", "Heels")])
def test_text_queries_follow_their_words(service, query, colour, article_type):
    top = [(attr(r, "colour"), attr(r, "article_type")) for r in service.search_text(query, k=3).results]
    assert top[0] == (colour, article_type), top
    assert all(c == colour or t == article_type for c, t in top), top


def test_similar_products_share_colour_and_often_type(service):
    """Leave-one-out "more like this" on a seeded sample: precision@10 of the same colour and the same type."""
    items = service.catalog.items
    sample = random.Random(SEEDS["heldout"] + 5).sample(range(len(items)), 150)
    colour = type_ = 0.0
    for row in sample:
        me = items.iloc[row]
        results = service.search_item(me["id"], k=10).results
        colour += np.mean([attr(r, "colour") == me["colour"] for r in results])
        type_ += np.mean([attr(r, "article_type") == me["article_type"] for r in results])
    assert colour / len(sample) >= 0.85  # this sample: 0.915 (evaluate.py, 1,000 items: 0.92)
    assert type_ / len(sample) >= 0.85  # this sample: 0.923 (evaluate.py: 0.91); chance is 1/12 (0.08)


def test_colour_and_type_text_queries(service):
    """"{colour} {article type}" for every pair in the catalog: precision@10 of results matching both."""
    import itertools

    from stylishi.demo import CATALOG_COLOURS, GARMENTS

    pairs = list(itertools.product(GARMENTS, CATALOG_COLOURS))
    vectors = service.embedder.embed_texts([f"{c} {t}" for t, c in pairs])  # one batch; searched one by one
    scores = []
    for (t, c), vector in zip(pairs, vectors):
        results = service.search_vector(vector, k=10).results
        scores.append(np.mean([(attr(r, "colour"), attr(r, "article_type")) == (c, t) for r in results]))
    assert np.mean(scores) >= 0.95  # measured 0.988; chance is 1/120


def test_held_out_camera_shots_find_their_item_in_the_top_10(service, demo_index):
    """The webcam case: a camera-like shot of a catalog item (held-out distortion seeds) finds that very item."""
    rng = random.Random(SEEDS["heldout"] + 777)
    picks = sorted(rng.sample(range(len(service.catalog)), 40))
    found = 0
    for n in picks:
        item_id = f"demo-{n:04d}"
        shot = camera_shot(Image.open(demo_index / "catalog_images" / f"{item_id}.png"), random.Random(SEEDS["heldout"] + n))
        found += item_id in [r.id for r in service.search_image(shot, k=10).results]
    # these 40: all 40 found (38 with the whole picture alone, without stylishi.focus; the previous model 37 and 34);
    # evaluate.py measures recall@10 0.944 on 1,000 shots (0.854 whole), against a target of 0.9 (README)
    assert found >= 37, f"only {found}/40 camera-like shots found their item in the top 10"


def test_the_demo_tokenizer_knows_the_catalog_words_and_survives_unknown_ones(service):
    tok = service.embedder.processor.tokenizer
    assert len(tok) > 500
    assert tok.tokenize("Red Dresses") == ["red</w>", "dresses</w>"]
    assert all(t in tok.get_vocab() for t in tok.tokenize("zebra-print poncho ünïcode 42"))  # letters, never unk
    vecs = service.embedder.embed_texts(["red dress", "black shoes", "zebra-print poncho"])
    assert float(vecs[0] @ vecs[1]) < 0.9  # different words, different vectors (the old vocabulary of 2 gave 1.0)


def test_camera_shot_is_seeded_and_camera_like():
    picture = garment_picture("Caps", "Blue", "Solid", seed=1)
    a, b = camera_shot(picture, random.Random(5)), camera_shot(picture, 5)
    c = camera_shot(picture, random.Random(6))
    assert a.size == (320, 240) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    # the cluttered room: far more distinct colours than a product shot on a plain backdrop
    assert len(np.unique(np.asarray(a).reshape(-1, 3), axis=0)) > 4 * len(np.unique(np.asarray(picture).reshape(-1, 3), axis=0))


def test_demo_model_is_checksummed(tmp_path):
    verify_checksums(MODEL_DIR)
    copy = copy_demo_model(tmp_path / "m")
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="damaged .*train_demo_model.py"):
        copy_demo_model(tmp_path / "again", source=copy)
    shutil.rmtree(copy)
    with pytest.raises(ModelError, match="missing"):
        verify_checksums(copy)


@pytest.mark.slow
def test_training_script_runs_end_to_end(tmp_path):
    """A few steps on a tiny sample, then the model loads through the production path and embeds."""
    out = tmp_path / "model"
    done = subprocess.run([sys.executable, "scripts/train_demo_model.py", "--steps", "2", "--pool", "48", "--groups",
                           "2", "--per-group", "4", "--workers", "1", "--no-eval", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    verify_checksums(out)
    from stylishi.embedder import Embedder

    emb = Embedder.load(out, device="cpu", mode="fp32")
    assert emb.embed_images([garment_picture("Heels", "Red", "Solid")]).shape == (1, 64)
    assert emb.embed_texts(["red heels"]).shape == (1, 64)

    # --init goes on from that model: its tokenizer is kept, and the record names what it went on from
    more = tmp_path / "more"
    done = subprocess.run([sys.executable, "scripts/train_demo_model.py", "--init", str(out), "--steps", "2", "--pool",
                           "48", "--groups", "2", "--per-group", "4", "--workers", "1", "--no-eval", "--out",
                           str(more)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((more / "TRAINING.json").read_text())
    assert record["init"]["from"] == str(out) and record["init"]["steps"] == 2
    assert (more / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()
    assert Embedder.load(more, device="cpu", mode="fp32").embed_texts(["red heels"]).shape == (1, 64)
