"""SigLIP beside CLIP: a tiny random SigLIP (stylishi.standins) through the production path: from_pretrained, the index
builder's command line, stylishi.load, the fidelity gate and its fast CPU paths, the app."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stylishi
from stylishi import catalog as catalog_mod
from stylishi.demo import garment_picture, save_tiny_clip
from stylishi.embedder import Embedder
from stylishi.errors import ModelMismatchError
from stylishi.standins import save_tiny_siglip

ROOT = Path(__file__).resolve().parents[1]
GARMENTS = [("Dresses", "Red", "Solid"), ("Dresses", "Blue", "Striped"), ("Tshirts", "Green", "Checked"),
            ("Tshirts", "Black", "Solid"), ("Trousers", "Navy Blue", "Solid"), ("Trousers", "Beige", "Checked"),
            ("Caps", "Yellow", "Polka Dot"), ("Caps", "Red", "Striped"), ("Handbags", "Pink", "Solid"),
            ("Handbags", "Brown", "Checked"), ("Casual Shoes", "Grey", "Solid"), ("Casual Shoes", "Orange", "Striped"),
            ("Skirts", "Purple", "Polka Dot"), ("Skirts", "Green", "Solid"), ("Jackets", "Black", "Checked"),
            ("Jackets", "Blue", "Solid")]


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory) -> Path:
    return save_tiny_siglip(tmp_path_factory.mktemp("siglip") / "model")


@pytest.fixture(scope="module")
def siglip(siglip_dir) -> Embedder:
    return Embedder.load(siglip_dir, device="cpu", mode="fp32")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Sixteen garment pictures with a metadata.csv, as a shop's folder would be."""
    folder = tmp_path_factory.mktemp("photos")
    rows = []
    for n, (kind, colour, pattern) in enumerate(GARMENTS):
        name = f"item-{n:02d}.png"
        garment_picture(kind, colour, pattern, seed=n).save(folder / name)
        rows.append({"file_name": name, "id": f"item-{n:02d}", "name": f"{colour} {pattern.lower()} {kind.lower()}",
                     "category": "Apparel", "article_type": kind, "colour": colour})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def siglip_index(tmp_path_factory, siglip_dir, pictures) -> Path:
    """`python build_index.py --images DIR --model SIGLIP_DIR --out OUT`, exactly as a person runs it."""
    out = tmp_path_factory.mktemp("siglip_index")
    done = subprocess.run([sys.executable, str(ROOT / "build_index.py"), "--images", str(pictures), "--model",
                           str(siglip_dir), "--out", str(out), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "items        16" in done.stdout, done.stdout
    return out


# -- the stand-in and the family ---------------------------------------------------------------------------------------
def test_the_stand_in_loads_through_the_auto_classes(siglip_dir, siglip):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(str(siglip_dir), use_safetensors=True)
    processor = AutoProcessor.from_pretrained(str(siglip_dir))
    assert type(model).__name__ == "SiglipModel" and type(processor).__name__ == "SiglipProcessor"
    assert type(processor.tokenizer).__name__ == "SiglipTokenizer" and len(processor.tokenizer) > 40  # a real vocabulary
    assert (siglip_dir / "spiece.model").is_file() and (siglip_dir / "model.safetensors").is_file()
    assert siglip.family.name == "siglip" and siglip.dim == 48
    ids = processor.tokenizer(["red dress", "blue cap"])["input_ids"]
    assert ids[0] != ids[1]  # the words reach the model
    # Saved twice with the same seed: the same weights, the same vectors.
    again = Embedder.load(save_tiny_siglip(siglip_dir.parent / "again"), device="cpu", mode="fp32")
    pic = [garment_picture("Skirts", "Green", "Checked", seed=3)]
    np.testing.assert_allclose(again.embed_images(pic), siglip.embed_images(pic), atol=1e-6)


def test_siglip_texts_are_padded_to_the_full_length_without_a_mask(siglip):
    """SigLIP pools the last position, so a text's vector must not depend on the other texts in its batch: padded to
    max_length (as SigLIP was trained), a short text looks the same alone and beside a long one."""
    alone = siglip.embed_texts(["red dress"])
    batched = siglip.embed_texts(["red dress", "a long navy blue striped cotton shirt for summer evenings"])
    np.testing.assert_allclose(batched[:1], alone, atol=1e-5)
    assert float(batched[0] @ batched[1]) < 0.9999
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    batch = siglip.processor(text=["red dress"], padding=siglip.family.text_padding, truncation=True,
                             max_length=siglip._max_text_tokens, return_tensors="pt")
    assert batch["input_ids"].shape == (1, 16) and siglip.family.text_inputs == ("input_ids",)


def test_clip_keeps_its_own_conventions(tmp_path):
    clip = Embedder.load(save_tiny_clip(tmp_path / "clip"), device="cpu", mode="fp32")
    assert clip.family.name == "clip" and clip.family.text_padding is True and clip.dim == 64
    assert "attention_mask" in clip.family.text_inputs


# -- build and serve ---------------------------------------------------------------------------------------------------
def test_the_manifest_records_the_family(siglip_index, siglip_dir):
    manifest = json.loads((siglip_index / "manifest.json").read_text())
    assert manifest["model"]["family"] == "siglip"
    assert Path(manifest["model"]["id"]).resolve() == siglip_dir.resolve()
    assert manifest["embedding"]["dim"] == 48 and manifest["count"] == len(GARMENTS)


def test_a_siglip_index_serves_pictures_and_text(siglip_index, pictures, siglip):
    service = stylishi.load(siglip_index, device="cpu", mode="fp32")
    assert service.embedder.family.name == "siglip"
    for n in range(len(GARMENTS)):
        res = service.search_image(pictures / f"item-{n:02d}.png", k=3)
        assert res.results[0].id == f"item-{n:02d}" and res.results[0].score == pytest.approx(1.0, abs=1e-4)
    res = service.search_text("red dress", k=5)
    assert len(res.results) == 5 and len({r.id for r in res.results}) == 5
    np.testing.assert_allclose(res.vector, siglip.embed_texts(["red dress"])[0], atol=1e-5)
    assert stylishi.check_compatible(service.catalog.manifest, service.embedder, root=siglip_index,
                                     catalog=service.catalog) > 0.99


def test_a_clip_model_is_refused_for_a_siglip_index(siglip_index, tmp_path):
    clip_dir = save_tiny_clip(tmp_path / "clip")
    with pytest.raises(ModelMismatchError, match=r"\(a SigLIP model\), but the model .*clip \(a CLIP model\) was asked"):
        stylishi.load(siglip_index, model=str(clip_dir))  # refused before anything is loaded
    # A CLIP model that got past the name (e.g. the folder was swapped) is refused by its family once loaded.
    clip = Embedder.load(clip_dir, device="cpu", mode="fp32")
    manifest = catalog_mod.read_manifest(siglip_index)
    with pytest.raises(ModelMismatchError, match=r"built with the SigLIP model .* is a CLIP model"):
        stylishi.check_compatible(manifest, clip, root=siglip_index)


def test_an_index_without_a_family_is_clip(demo_index):
    from stylishi import families

    manifest = catalog_mod.read_manifest(demo_index)
    assert manifest["model"]["family"] == "clip"
    del manifest["model"]["family"]  # an index written before the manifest recorded it
    assert families.of_manifest(manifest) == "clip"


# -- the fast CPU paths and the fidelity gate ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["int8", "openvino"])
def test_fast_siglip_paths_pass_the_gate_or_fall_back_with_a_reason(siglip_dir, siglip, mode, caplog):
    pics = [garment_picture("Dresses", "Red", "Solid", seed=4), garment_picture("Caps", "Blue", "Striped", seed=5)]
    want = siglip.embed_images(pics)
    roomy = Embedder.load(siglip_dir, device="cpu", mode=mode, neighbour_gap=0.05)
    assert roomy.mode == mode and roomy.fidelity_cosine >= 0.99
    assert float(np.min(np.sum(roomy.embed_images(pics) * want, axis=1))) > 0.99
    assert roomy.embed_texts(["red dress"]).shape == (1, 48)
    if mode == "openvino":
        assert roomy.model.vision_model is None  # the compiled tower replaced the torch one
    # Catalog neighbours closer than any fast path's error: fp32 stays, and the log says why.
    with caplog.at_level(logging.INFO, logger="stylishi.embedder"):
        strict = Embedder.load(siglip_dir, device="cpu", mode=mode, neighbour_gap=1e-9)
    assert strict.mode == "fp32" and "not faithful enough" in caplog.text
    np.testing.assert_allclose(strict.embed_images(pics), want, atol=1e-5)


def test_auto_and_bf16_work_for_siglip(siglip_dir, siglip):
    auto = Embedder.load(siglip_dir, device="cpu", mode="auto", neighbour_gap=0.05)
    assert auto.mode in ("openvino", "int8")
    bf16 = Embedder.load(siglip_dir, device="cpu", mode="bf16")
    pic = [garment_picture("Tshirts", "Green", "Checked", seed=6)]
    assert bf16.mode == "bf16" and float((bf16.embed_images(pic) @ siglip.embed_images(pic).T)[0, 0]) > 0.98


# -- the app ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_app_serves_a_siglip_index(siglip_index, pictures, tmp_path):
    import httpx

    from tests.helpers import file_data, http_call, running_app, upload_bytes

    with running_app(siglip_index, tmp_path / "app") as app, httpx.Client(base_url=app.url, timeout=60) as http:
        path = upload_bytes(http, "item-03.png", (pictures / "item-03.png").read_bytes()).json()[0]
        kind, outputs = http_call(http, "search_image", [file_data(path, "item-03.png"), 3, None])
        assert kind == "complete", outputs
        assert outputs[1][0]["id"] == "item-03"
        kind, outputs = http_call(http, "search_text", ["green checked t-shirt", 4, None])
        assert kind == "complete" and len(outputs[1]) == 4, outputs
