"""Embedder, artifact and search service on the offline demo index, through the real from_pretrained path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import stylishi
from stylishi import catalog as catalog_mod
from stylishi.demo import copy_demo_model, garment_picture, save_tiny_clip
from stylishi.embedder import Embedder
from stylishi.focus import picture_vectors
from stylishi.errors import ArtifactError, ImageError, ModelError, QueryError


# -- embedder --------------------------------------------------------------------------------------------------
def test_embeddings_are_unit_float32_and_deterministic(service):
    emb = service.embedder
    pics = [garment_picture("Dresses", "Red", "Solid", seed=1), garment_picture("Caps", "Blue", "Striped", seed=2)]
    a = emb.embed_images(pics)
    b = emb.embed_images(pics[::-1])[::-1]
    assert a.shape == (2, emb.dim) == (2, 64) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)  # order in the batch does not matter
    assert float(a[0] @ a[1]) < 0.9999  # different pictures, different vectors
    t = emb.embed_texts(["red floral summer dress", "blue cap"])
    assert t.shape == (2, 64) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert emb.embed_images([]).shape == (0, 64)


def test_a_reloaded_checkpoint_gives_the_same_vectors(tmp_path, service):
    model_dir = copy_demo_model(tmp_path / "again")  # the shipped demo model, copied again: same weights
    other = Embedder.load(model_dir, device="cpu", mode="fp32")
    pic = [garment_picture("Skirts", "Green", "Checked", seed=3)]
    original = Embedder.load(service.catalog.root / "model", device="cpu", mode="fp32")
    np.testing.assert_allclose(other.embed_images(pic), original.embed_images(pic), atol=1e-6)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="Could not load the model"):
        Embedder.load(tmp_path / "empty")


# -- search ----------------------------------------------------------------------------------------------------
def test_every_catalog_item_finds_itself_first(service, demo_index):
    items = service.catalog.items
    for row in range(0, len(items), 5):
        item_id = items.at[row, "id"]
        res = service.search_image(demo_index / "catalog_images" / f"{item_id}.png", k=3)
        assert res.results[0].id == item_id
        assert res.results[0].score == pytest.approx(1.0, abs=1e-4)
        assert res.focus is None  # a catalog picture is searched as it is, not focused on a garment (stylishi.focus)
        fit = service.calibration.get("image")  # % match: the calibrated chance of the same article type
        expected = fit.probability(res.results[0].score) * 100 if fit else 100.0
        assert res.calibrated == (fit is not None) and res.results[0].match == pytest.approx(expected, abs=0.1)


def test_response_shape_and_timings(service, demo_index):
    res = service.search_image(demo_index / "catalog_images" / "demo-0000.png", k=7)
    assert [r.rank for r in res.results] == list(range(1, 8))
    scores = [r.score for r in res.results]
    assert scores == sorted(scores, reverse=True)
    assert set(res.timings_ms) == {"preprocess", "embed", "search", "format", "total"} | (
        {"detect"} if service.focus.on else set())  # the demo focuses photos on their garment (stylishi.focus)
    assert res.timings_ms["total"] >= res.timings_ms["embed"] > 0
    assert res.catalog_size == 1200 and res.query == "image"
    top = res.results[0]
    assert top.name == "Black t-shirt" and (top.category, top.article_type, top.colour) == ("Apparel", "Tshirts", "Black")
    assert top.metadata["colour"] == "Black" and "thumbnail" not in top.metadata
    thumb = Path(top.thumbnail)
    assert thumb.is_file() and thumb.name == "demo-0000.jpg"
    assert Image.open(thumb).format == "JPEG" and max(Image.open(thumb).size) <= 256
    json.dumps(res.to_dict())  # plain data all the way down


def test_filters_narrow_results_exactly(service):
    pic = garment_picture("Tshirts", "Red", "Solid", seed=99)
    res = service.search_image(pic, k=50, filters={"gender": "women", "colour": ["Blue", "Green"]})
    assert res.results
    assert all(r.metadata["gender"] == "Women" and r.metadata["colour"] in ("Blue", "Green") for r in res.results)
    # exact: the filtered list is the unfiltered ranking restricted to the allowed items
    everything = service.search_image(pic, k=50, filters=None).results
    full = service.search_vector(picture_vectors(service, [pic])[0], k=50).results
    assert [r.id for r in everything] == [r.id for r in full]
    items = service.catalog.items
    allowed = set(items[(items.gender == "Women") & items.colour.isin(["Blue", "Green"])].id)
    vec = picture_vectors(service, [pic])[0]
    from stylishi.index import reconstruct

    rows = np.array([service.catalog.row_of(i) for i in sorted(allowed)])
    scores = reconstruct(service.catalog.index, rows) @ vec
    expected = [sorted(allowed)[i] for i in np.argsort(-scores, kind="stable")[: len(res.results)]]
    assert [r.id for r in res.results] == expected
    assert service.search_text("dress", k=5, filters={"gender": "All"}).results  # "All" means no filter


def test_text_and_more_like_this(service):
    res = service.search_text("  red   floral summer dress ", k=4, filters={"category": "Apparel"})
    assert len(res.results) == 4 and res.query == "text"
    assert all(r.metadata["category"] == "Apparel" for r in res.results)


def test_more_like_this_leaves_the_item_out(service):
    """"More like this" answers the item's nearest neighbours: the stored-vector ranking, without the item itself."""
    from stylishi.index import reconstruct

    vector = reconstruct(service.catalog.index, [service.catalog.row_of("demo-0010")])[0]
    ranking = [r.id for r in service.search_vector(vector, k=4).results]
    assert ranking[0] == "demo-0010"  # the item is its own best match, hence left out below
    similar = service.search_item("demo-0010", k=3)
    assert [r.id for r in similar.results] == ranking[1:] and [r.rank for r in similar.results] == [1, 2, 3]
    # With a filter the item fails, and with one it passes: k others either way.
    red = service.search_item("demo-0010", k=5, filters={"colour": "Red"}).results
    blue = service.search_item("demo-0010", k=5, filters={"colour": "Blue"}).results
    assert len(red) == len(blue) == 5 and "demo-0010" not in {r.id for r in red + blue}


def test_a_results_fields_work_as_filters(service):
    """category, article_type and colour of a result are catalog values: passed back as filters they narrow."""
    top = service.search_text("red floral summer dress", k=1).results[0]
    assert top.category and top.article_type and top.colour
    for column in ("category", "article_type", "colour"):
        value = getattr(top, column)
        assert value == top.metadata[column]
        res = service.search_text("red floral summer dress", k=20, filters={column: value}).results
        assert res and all(r.metadata[column] == value and getattr(r, column) == value for r in res)


@pytest.mark.parametrize("call,message", [
    (lambda s: s.search_text("", k=3), "Type a few words"),
    (lambda s: s.search_text("   \n\t ", k=3), "Type a few words"),
    (lambda s: s.search_text("x" * 10_000, k=3), "at most 500 characters"),
    (lambda s: s.search_text("dress", k=0), "from 1 to 50"),
    (lambda s: s.search_text("dress", k=51), "from 1 to 50"),
    (lambda s: s.search_text("dress", k="many"), "whole number"),
    (lambda s: s.search_item("no-such-item"), "no item with id"),
    (lambda s: s.search_text("dress", filters={"price": "cheap"}), "cannot be filtered by 'price'"),
    (lambda s: s.search_text("dress", filters={"colour": "Chartreuse"}), "No item has colour 'chartreuse'"),
    (lambda s: s.search_vector(np.ones(3)), "3 dimensions"),
])
def test_bad_queries_get_clear_messages(service, call, message):
    with pytest.raises(QueryError, match=message):
        call(service)


def test_bad_image_query_is_an_image_error(service):
    with pytest.raises(ImageError, match="not a picture"):
        service.search_image(b"not a picture at all")
    with pytest.raises(ImageError, match="GIF images are not supported"):  # named from its first bytes, never parsed
        service.search_image(b"GIF89a not really")


def test_public_surface(service, demo_index):
    vecs = stylishi.encode(service, [demo_index / "catalog_images" / "demo-0003.png"])
    assert vecs.shape == (1, 64)
    assert stylishi.search(service, vecs[0], k=1).results[0].id == "demo-0003"
    assert stylishi.search(service, str(demo_index / "catalog_images" / "demo-0003.png"), k=1).results[0].id == "demo-0003"
    assert stylishi.search(service, "black cap", k=2).query == "text"


# -- the artifact ----------------------------------------------------------------------------------------------
def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("catalog_images"))
    return dst


def test_round_trip_with_another_index_type(tmp_path, service):
    vecs = stylishi.encode(service, [garment_picture(t, c, "Solid", seed=i) for i, (t, c) in
                                     enumerate([("Tshirts", "Red"), ("Caps", "Blue"), ("Dresses", "Pink")] * 20)])
    items = pd.DataFrame({"id": [f"x{i}" for i in range(60)], "name": [f"Item {i}" for i in range(60)],
                          "colour": ["Red", "Blue", "Pink"] * 20})
    thumbs = [b"\xff\xd8fake"] * 60
    manifest = catalog_mod.write(tmp_path / "hnsw", vectors=vecs, items=items, thumbnails=thumbs,
                                 model={"id": "tiny"}, factory="HNSW16")
    assert manifest["index"]["type"] == "IndexHNSWFlat" and manifest["count"] == 60
    cat = catalog_mod.load(tmp_path / "hnsw")
    svc = stylishi.SearchService(service.embedder, cat)
    for i in (0, 7, 33):
        assert svc.search_vector(vecs[i], k=1).results[0].score == pytest.approx(1.0, abs=1e-5)
    filtered = svc.search_vector(vecs[0], k=5, filters={"colour": "Blue"}).results
    assert filtered and all(r.metadata["colour"] == "Blue" for r in filtered)


def test_corrupted_index_file_is_refused(tmp_path, demo_index):
    root = copy_index(demo_index, tmp_path / "idx")
    data = bytearray((root / "index.faiss").read_bytes())
    data[200] ^= 0xFF
    (root / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"index.faiss is corrupted: its sha256 is .* Rebuild it"):
        catalog_mod.load(root)


def test_truncated_file_and_missing_file_are_refused(tmp_path, demo_index):
    root = copy_index(demo_index, tmp_path / "idx")
    data = (root / "thumbnails.parquet").read_bytes()
    (root / "thumbnails.parquet").write_bytes(data[:-100])
    with pytest.raises(ArtifactError, match="truncated or was replaced"):
        catalog_mod.load(root)
    (root / "thumbnails.parquet").unlink()
    with pytest.raises(ArtifactError, match="thumbnails.parquet is missing"):
        catalog_mod.load(root)


def test_wrong_checksum_in_manifest_is_refused(tmp_path, demo_index):
    root = copy_index(demo_index, tmp_path / "idx")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["items.parquet"]["sha256"] = "0" * 64
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="items.parquet is corrupted"):
        catalog_mod.load(root)


def test_count_mismatch_is_refused(tmp_path, demo_index):
    root = copy_index(demo_index, tmp_path / "idx")
    items = pd.read_parquet(root / "items.parquet").iloc[:-1]
    items.to_parquet(root / "items.parquet", index=False)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["items.parquet"] = catalog_mod._file_entry(root / "items.parquet")
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="item counts differ .*items.parquet 1199"):
        catalog_mod.load(root)


def test_model_dim_mismatch_is_refused(tmp_path, demo_index, service):
    root = copy_index(demo_index, tmp_path / "idx")
    bigger = Embedder.load(save_tiny_clip(tmp_path / "m128", dim=128), device="cpu")
    with pytest.raises(ArtifactError, match="64-d vectors .* makes 128-d vectors"):
        stylishi.check_compatible(catalog_mod.read_manifest(root), bigger, root=root)
    with pytest.raises(ArtifactError, match="Load ./model, or rebuild"):
        stylishi.SearchService(bigger, catalog_mod.load(root))
    with pytest.raises(ArtifactError, match="was built with the model ./model"):
        stylishi.load(root, model=str(tmp_path / "m128"))


def test_not_an_index_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        catalog_mod.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="has no manifest.json"):
        catalog_mod.load(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        catalog_mod.load(tmp_path / "empty")


def test_no_pickle_in_the_artifact(demo_index):
    for path in demo_index.iterdir():
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
    assert {p.name for p in demo_index.iterdir() if p.is_file()} == {
        "manifest.json", "index.faiss", "items.parquet", "thumbnails.parquet"}


def test_missing_thumbnail_gets_a_placeholder(tmp_path, service):
    vecs = service.embedder.embed_images([garment_picture("Caps", "Red", "Solid", seed=5)] * 2)
    vecs[1] = -vecs[1]
    items = pd.DataFrame({"id": ["a", "b"], "name": ["A", "B"]})
    catalog_mod.write(tmp_path / "ph", vectors=vecs, items=items, thumbnails=[b"\xff\xd8x", None], model={"id": "t"})
    cat = catalog_mod.load(tmp_path / "ph")
    assert cat.thumbnail_path(1).name == "_missing.jpg" and Image.open(cat.thumbnail_path(1)).size == (128, 128)
    assert cat.thumbnail_path(0).name == "a.jpg"


def test_auto_index_choice_and_tuned_recall():
    """Above the exact-search threshold the builder picks a graph index and tunes it to recall@10 >= 0.95."""
    from stylishi import index as faiss_index

    assert faiss_index.choose_factory(5_000) == "Flat"
    assert faiss_index.choose_factory(50_000) == "HNSW32,SQ8"
    assert faiss_index.choose_factory(1_000_000).startswith("IVF") and faiss_index.choose_factory(10**6).endswith(",SQ8")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32)).astype(np.float32)
    x = centres[rng.integers(0, 50, 4000)] + rng.normal(0, 0.6, (4000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for factory, knob in (("HNSW16,SQ8", "efSearch"), ("IVF32,SQ8", "nprobe")):
        idx = faiss_index.build(x, factory)
        params = faiss_index.tune(idx, x)
        assert knob in params and params["recall@10"] >= 0.95
        q = x[:50] + rng.normal(0, 0.01, (50, 32)).astype(np.float32)
        truth = faiss_index.exact_top_k(x, q, 10)
        _, found = faiss_index.search(idx, q, 10)
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]) >= 0.9
        # filtered search stays exact on approximate indexes
        allowed = np.arange(1, 4000, 3)
        _, got = faiss_index.search(idx, q[:5], 5, allowed=allowed)
        sub = faiss_index.reconstruct(idx, allowed)
        want = allowed[np.argsort(-(q[:5] @ sub.T), axis=1, kind="stable")[:, :5]]
        assert (got == want).mean() >= 0.95


def test_int8_mode_is_refused_when_it_would_reorder_near_neighbours(demo_index, service, caplog):
    """Catalog items packed ~1e-4 apart (as a random tiny CLIP packs them): int8 noise is about that big and is
    refused; OpenVINO's error is far smaller, so the service's default "auto" takes it. (The trained demo model
    spreads its items ~7e-3 apart, where int8 is faithful.)"""
    import logging

    gap = service.catalog.neighbour_gap()
    assert 0 < gap < 0.05
    assert service.embedder.mode == "openvino"  # stylishi.load's default "auto" decided this
    with caplog.at_level(logging.INFO, logger="stylishi.embedder"):
        emb = Embedder.load(demo_index / "model", device="cpu", mode="int8", neighbour_gap=1e-4)
    assert emb.mode == "fp32" and "not faithful enough" in caplog.text
    # With catalog items far apart, the same int8 model is kept: a different, faithful vector space.
    pic = [garment_picture("Dresses", "Red", "Solid", seed=4)]
    for mode in ("int8", "openvino"):
        roomy = Embedder.load(demo_index / "model", device="cpu", mode=mode, neighbour_gap=0.05)
        assert roomy.mode == mode and roomy.fidelity_cosine >= 0.99
        assert float((roomy.embed_images(pic) @ service.embedder.embed_images(pic).T)[0, 0]) > 0.99
        assert roomy.embed_texts(["red dress"]).shape == (1, 64)
    assert Embedder.load(demo_index / "model", device="cpu", mode="auto", neighbour_gap=0.05).mode == "openvino"
    assert Embedder.load(demo_index / "model", device="cpu", mode="bf16").mode == "bf16"
    with pytest.raises(ModelError, match="Unknown embedding mode"):
        Embedder.load(demo_index / "model", mode="fp8")


# -- one way to open a service ------------------------------------------------------------------------------------------
def test_the_package_surface_and_its_modules():
    import stylishi.service

    assert callable(stylishi.search) and stylishi.search is stylishi.service.search
    assert stylishi.load is stylishi.service.load and stylishi.SearchService is stylishi.service.SearchService


def test_another_named_model_is_refused_before_anything_is_loaded(demo_index):
    from stylishi import ModelMismatchError

    manifest = catalog_mod.read_manifest(demo_index)
    with pytest.raises(ModelMismatchError, match=r"built with the model \./model, but the model owner/other was asked"):
        stylishi.load(demo_index, model="owner/other")  # offline: a download attempt would fail differently
    assert stylishi.check_compatible(manifest, model=str(demo_index / "model"), root=demo_index) is None
    assert stylishi.check_compatible(manifest, model="./model", root=demo_index) is None


def test_the_loaded_model_reproduces_the_index(service):
    median = stylishi.check_compatible(service.catalog.manifest, service.embedder, root=service.catalog.root,
                                       catalog=service.catalog)
    assert median is not None and median > 0.99


# -- the fidelity gate ----------------------------------------------------------------------------------------------------
def test_the_gate_judges_by_cosine_and_by_the_gap_between_neighbours():
    from stylishi import fidelity

    ref = np.eye(3, dtype=np.float32)
    close = ref + np.float32(1e-3)
    close /= np.linalg.norm(close, axis=1, keepdims=True)
    assert fidelity.judge("image", ref, close).faithful  # probes 1.0 apart: tiny noise is harmless
    assert not fidelity.judge("image", ref, close, neighbour_gap=1e-7).faithful  # neighbours closer than the noise
    assert not fidelity.judge("text", ref, ref[::-1]).faithful
    pictures = fidelity.probe_pictures()
    assert len(pictures) == fidelity.PROBE_PICTURES and len({p.tobytes() for p in pictures}) == len(pictures)


def test_the_int8_text_tower_is_checked_too(demo_index):
    fp32 = Embedder.load(demo_index / "model", device="cpu", mode="fp32")
    texts = ["red summer dress", "green cap"]
    want = fp32.embed_texts(texts)
    tower = fp32.model.text_model
    assert fp32._quantise_text_tower(True, neighbour_gap=1e-12) is False  # no int8 error is that small: refused
    assert fp32.model.text_model is tower and fp32.text_fidelity_cosine is None
    np.testing.assert_array_equal(fp32.embed_texts(texts), want)
    roomy = Embedder.load(demo_index / "model", device="cpu", mode="int8", neighbour_gap=0.05)
    assert roomy.mode == "int8" and roomy.text_fidelity_cosine is not None and roomy.text_fidelity_cosine >= 0.99
    assert roomy.model.text_model is not tower and float(np.min(np.sum(roomy.embed_texts(texts) * want, axis=1))) >= 0.99


def test_loading_a_model_prints_no_framework_chatter(demo_index, tmp_path):
    """A person starting the app sees StyliShi's log lines only: no TracerWarnings from the OpenVINO conversion, no
    transformers notices meant for training (loss_type), no weight-loading progress bars."""
    import subprocess
    import sys

    code = ("import logging; logging.basicConfig(level=logging.WARNING)\n"
            "from stylishi.embedder import Embedder\n"
            f"e = Embedder.load({str(demo_index / 'model')!r}, device='cpu', mode='openvino', neighbour_gap=0.05)\n"
            "print('mode', e.mode)\n")
    env = {**__import__("os").environ, "STYLISHI_CACHE": str(tmp_path / "cache")}  # a first start: it converts
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "mode openvino" in done.stdout, done.stderr[-3000:]
    noise = [line for line in done.stderr.splitlines() if line.strip()]
    assert not noise, "\n".join(noise)


# -- the installable package ----------------------------------------------------------------------------------------------
def test_the_package_declares_exactly_the_pinned_requirements():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = [line.split("#")[0].strip() for line in (root / "requirements.txt").read_text().splitlines()]
    assert sorted(project["dependencies"]) == sorted(p for p in pins if p)
    assert project["scripts"]["stylishi"] == "stylishi.cli:main"


def test_the_stylishi_command(capsys):
    from stylishi import cli

    assert cli.main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert all(f"  {name} " in usage for name in ("serve", "build", "eval"))
    assert cli.main(["bogus"]) == 2 and "unknown command 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli.main(["build", "--help"])
    assert done.value.code == 0 and "usage: stylishi build" in capsys.readouterr().out
    for name, module in (("eval", "stylishi.evaluate"), ("serve", "stylishi_ui.server")):
        try:
            __import__(module)
        except ModuleNotFoundError:  # not written yet: a clear sentence, not a traceback
            assert cli.main([name, "--help"]) == 2 and f"no {module} yet" in capsys.readouterr().err


def test_the_heap_arena_cap_defers_to_malloc_arena_max(monkeypatch):
    import platform

    from stylishi.serving import cap_heap_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_heap_arenas() is False  # the person's own setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert cap_heap_arenas(8) is (platform.libc_ver()[0] == "glibc")  # 8: glibc's own default on 1 core, harmless
