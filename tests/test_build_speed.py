"""The faster build: pictures prepared on worker threads give exactly the serial build's catalog, and a fast image
path writes the catalog only when the build gate finds it faithful to fp32 on the catalog's own pictures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stylishi import build_gate, builder
from stylishi import catalog as catalog_mod
from stylishi.embedder import Embedder


@pytest.fixture(scope="module")
def records(demo_index):
    pictures = sorted((demo_index / "catalog_images").glob("demo-*.png"))[:150]
    recs = [builder.Record(id=p.stem, image=p.read_bytes(), metadata={"name": p.stem}, origin=p.name)
            for p in pictures]
    recs.insert(3, builder.Record(id="broken", image=b"not a picture", metadata={}, origin="broken.jpg"))
    recs.insert(7, builder.Record(id=recs[0].id, image=recs[1].image, metadata={}, origin="copy.png"))
    return recs


def _fp32(demo_index) -> Embedder:
    return Embedder.load(demo_index / "model", device="cpu", mode="fp32")


def _vectors(out) -> tuple[list[str], np.ndarray]:
    cat = catalog_mod.load(out)
    return list(cat.items["id"]), cat.store.vectors(np.arange(len(cat)))


@pytest.fixture(scope="module")
def serial(demo_index, records, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return builder.build(records, _fp32(demo_index), out, progress=False, batch_size=16, workers=0)


def test_workers_build_the_serial_builds_catalog(demo_index, records, serial, tmp_path):
    threaded = builder.build(records, _fp32(demo_index), tmp_path / "threaded", progress=False, batch_size=16,
                             workers=3)
    assert threaded.items == serial.items == 150
    assert threaded.skipped == serial.skipped == {"unreadable image": 1, "duplicate id": 1}
    ids_s, vec_s = _vectors(serial.out)
    ids_t, vec_t = _vectors(threaded.out)
    assert ids_s == ids_t
    np.testing.assert_allclose(vec_s, vec_t, atol=1e-5)
    thumbs = [catalog_mod.load(r.out).thumbnails.column("jpeg").to_pylist() for r in (serial, threaded)]
    assert thumbs[0] == thumbs[1]
    assert threaded.validation_passed == threaded.validated == 32
    assert {"decode", "thumbnails", "preprocess", "embed", "validation"} <= set(threaded.stages_s)
    limited = builder.build(records, _fp32(demo_index), tmp_path / "limited", progress=False, batch_size=4,
                            workers=2, limit=5)
    assert _vectors(limited.out)[0] == ids_s[:5]  # the broken record (4th) is skipped, not counted


def test_a_fast_build_keeps_its_path_only_through_the_gate(demo_index, records, serial, tmp_path):
    report = builder.build(records, _fp32(demo_index), tmp_path / "fast", progress=False, batch_size=16, fast=True)
    assert report.gate, "a 150-picture build judges its fast paths"
    verdict = report.gate[-1]
    assert verdict.items == build_gate.SAMPLE
    manifest = json.loads((tmp_path / "fast" / "manifest.json").read_text())
    assert manifest["build"]["gate"] == [v.as_dict() for v in report.gate]
    assert manifest["model"]["mode"] == manifest["build"]["embed_mode"] == report.embed_mode
    ids_s, vec_s = _vectors(serial.out)
    ids_f, vec_f = _vectors(report.out)
    assert ids_f == ids_s and report.validation_passed == report.validated
    cosine = np.sum(vec_s * vec_f, axis=1)
    import stylishi
    from stylishi.serving import service_stats

    stats = service_stats(stylishi.SearchService(_fp32(demo_index), catalog_mod.load(report.out)))
    assert stats["catalog_embed_mode"] == report.embed_mode and stats["catalog_build_gate"] == manifest["build"]["gate"]
    if verdict.faithful:
        assert report.embed_mode == verdict.mode != "fp32"
        assert cosine.min() >= 0.998  # the whole catalog, not only the gate's sample
        assert f"build gate   {verdict.mode} vs fp32 on 128 catalog pictures" in report.summary()
    else:
        assert report.embed_mode == "fp32" and all(not v.faithful for v in report.gate)
        np.testing.assert_allclose(vec_s, vec_f, atol=1e-5)


def test_too_few_pictures_to_judge_stay_fp32(demo_index, records, tmp_path):
    report = builder.build(records[:12], _fp32(demo_index), tmp_path / "few", progress=False, fast=True)
    assert report.embed_mode == "fp32" and report.gate == []
    assert "embedding    fp32 (the reference)" in report.summary()


def test_the_gate_judges_cosine_and_neighbours():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(128, 64)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    same = build_gate.judge("openvino", ref, ref.copy())
    assert same.faithful and same.overlap == 1.0 and same.cosine_min == pytest.approx(1.0, abs=1e-6)
    noisy = build_gate.judge("openvino", ref, unit(ref + rng.normal(0, 0.05, ref.shape).astype(np.float32)))
    assert not noisy.faithful and noisy.cosine_min < build_gate.MIN_COSINE
    # A catalog packed tight (all items within ~0.001 of each other): a tiny error keeps every cosine near 1 but
    # reshuffles who is whose neighbour, and that is refused too.
    tight = unit(ref[0] + rng.normal(0, 0.001, ref.shape).astype(np.float32))
    shuffled = build_gate.judge("bf16", tight, unit(tight + rng.normal(0, 0.0007, ref.shape).astype(np.float32)))
    assert shuffled.cosine_min >= build_gate.MIN_COSINE and shuffled.overlap < build_gate.MIN_OVERLAP
    assert not shuffled.faithful
    assert not build_gate.judge("openvino", ref[:10], ref[:10].copy()).faithful  # too few to judge
    assert "kept" in str(same) and "not faithful" in str(noisy)
