"""The faster build: pictures prepared on worker threads give exactly the serial build's catalog, and a fast image
path writes the catalog only when the build gate finds it faithful to fp32 on the catalog's own pictures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stylishi import build_gate, builder, openvino_backend
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
    assert report.gate[0].stage == "pre-check" and report.gate[0].items == build_gate.PRECHECK
    verdict = report.gate[-1]
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
    if any(v.faithful for v in report.gate):  # a path passed the pre-check: the catalog gate judged it
        assert verdict.stage == "catalog" and verdict.items == 150 and verdict.sample == build_gate.budget(150)
        assert "across the 150-item catalog" in report.summary()
    if verdict.faithful:
        assert report.embed_mode == verdict.mode != "fp32"
        assert cosine.min() >= 0.998  # the whole catalog, not only the gate's sample
    else:
        assert report.embed_mode == "fp32" and not report.gate[-1].faithful
        np.testing.assert_allclose(vec_s, vec_f, atol=1e-5)


def _stand_in_fast_path(monkeypatch, noise: float) -> None:
    """The build's fast path replaced by fp32's own vectors plus `noise` (a fixed random direction per picture,
    seeded by its pixels): 0 is a faithful path; a small noise keeps every cosine above the pre-check's floor."""
    monkeypatch.setattr(builder, "_fast_paths", lambda embedder: ("bf16",))
    exact = Embedder.embed_pixels

    def embed_pixels(self, pixel_values):
        if self.mode != "bf16":
            return exact(self, pixel_values)
        self.mode = "fp32"  # the stand-in path computes in fp32 (bf16's own error is the real path's, not this one's)
        try:
            vectors = exact(self, pixel_values)
        finally:
            self.mode = "bf16"
        if noise == 0:
            return vectors
        out = []
        for pixels, v in zip(pixel_values, vectors):
            rng = np.random.default_rng(int(pixels.float().abs().sum().item() * 1000) % 2**32)
            v = v + noise * rng.normal(size=v.shape).astype(np.float32) / np.sqrt(len(v))
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    monkeypatch.setattr(Embedder, "embed_pixels", embed_pixels)


def test_a_faithful_fast_path_passes_the_catalog_gate(demo_index, records, serial, tmp_path, monkeypatch):
    _stand_in_fast_path(monkeypatch, noise=0.0)
    report = builder.build(records, _fp32(demo_index), tmp_path / "kept", progress=False, batch_size=16, fast=True)
    precheck, verdict = report.gate
    assert precheck.faithful and verdict.stage == "catalog" and verdict.faithful and verdict.overlap == 1.0
    assert verdict.anchors >= 10 and verdict.sample == 150 and verdict.cosine_min == pytest.approx(1.0, abs=1e-5)
    assert report.embed_mode == "bf16" and "fp32 pass after a failed gate (wall)" not in report.stages_s
    assert "gate (catalog)" in report.stages_s
    np.testing.assert_allclose(_vectors(report.out)[1], _vectors(serial.out)[1], atol=1e-5)


def test_a_path_faithful_on_the_first_pictures_but_not_across_the_catalog_falls_back(records, tmp_path, monkeypatch):
    """A random-weights tiny CLIP packs the pictures tight (as in BENCHMARKS.md's worst case). Every cosine stays
    above 0.999, so the pre-check passes; but the catalog's neighbours are close enough for that error to reorder
    them: the catalog gate refuses the path, and the catalog is embedded again in fp32."""
    from stylishi.demo import save_tiny_clip

    model = save_tiny_clip(tmp_path / "random-clip")
    fp32 = builder.build(records, Embedder.load(model, device="cpu", mode="fp32"), tmp_path / "fp32",
                         progress=False, batch_size=16, workers=0)
    _stand_in_fast_path(monkeypatch, noise=0.03)
    report = builder.build(records, Embedder.load(model, device="cpu", mode="fp32"), tmp_path / "refused",
                           progress=False, batch_size=16, fast=True)
    precheck, verdict = report.gate
    assert precheck.faithful and precheck.cosine_min >= build_gate.MIN_COSINE
    assert verdict.stage == "catalog" and not verdict.faithful and verdict.overlap < build_gate.MIN_OVERLAP
    assert verdict.cosine_min >= build_gate.MIN_COSINE  # refused for its neighbours alone
    assert report.embed_mode == "fp32" and "fp32 pass after a failed gate (wall)" in report.stages_s
    if openvino_backend.available():  # the fp32 passes (reference, redo) ran through OpenVINO at f32: same vectors
        assert report.fp32_engine == "openvino-f32" and "fp32 computed by openvino-f32" in report.summary()
    manifest = json.loads((tmp_path / "refused" / "manifest.json").read_text())
    assert manifest["build"]["fp32_engine"] == report.fp32_engine
    assert manifest["model"]["mode"] == "fp32" and manifest["build"]["gate"][-1]["faithful"] is False
    ids_s, vec_s = _vectors(fp32.out)
    ids_r, vec_r = _vectors(report.out)
    assert ids_r == ids_s and report.validation_passed == report.validated
    np.testing.assert_allclose(vec_r, vec_s, atol=1e-5)


def test_a_one_shot_source_is_embedded_in_fp32(demo_index, records, tmp_path, monkeypatch):
    _stand_in_fast_path(monkeypatch, noise=0.0)
    report = builder.build(iter(records[:40]), _fp32(demo_index), tmp_path / "once", progress=False, fast=True)
    assert report.embed_mode == "fp32" and report.gate == []


def test_the_exact_engine_gives_torchs_fp32_vectors(demo_index, records):
    pytest.importorskip("openvino")
    from stylishi.images import load_image

    pictures = [load_image(r.image) for r in records[:40] if r.id != "broken"]
    torch_fp32 = _fp32(demo_index)
    exact = _fp32(demo_index)
    assert exact.use_exact_engine() and exact.engine == "openvino-f32" and exact.mode == "fp32"
    want, got = torch_fp32.embed_images(pictures), exact.embed_images(pictures)
    assert np.sum(want * got, axis=1).min() >= 0.99999
    assert torch_fp32.engine == "torch"
    bf16 = Embedder.load(demo_index / "model", device="cpu", mode="bf16")
    assert not bf16.use_exact_engine()  # only an fp32 embedder has fp32 passes to stand in for


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

    same = build_gate.judge("openvino", ref, ref.copy(), anchors=20, items=5000)
    assert same.faithful and same.overlap == 1.0 and same.cosine_min == pytest.approx(1.0, abs=1e-6)
    noisy = build_gate.judge("openvino", ref, unit(ref + rng.normal(0, 0.05, ref.shape).astype(np.float32)), 20, 5000)
    assert not noisy.faithful and noisy.cosine_min < build_gate.MIN_COSINE
    # A catalog packed tight (all items within ~0.001 of each other): a tiny error keeps every cosine near 1 but
    # reshuffles who is whose neighbour, and that is refused too.
    tight = unit(ref[0] + rng.normal(0, 0.001, ref.shape).astype(np.float32))
    shuffled = build_gate.judge("bf16", tight, unit(tight + rng.normal(0, 0.0007, ref.shape).astype(np.float32)),
                                20, 5000)
    assert shuffled.cosine_min >= build_gate.MIN_COSINE and shuffled.overlap < build_gate.MIN_OVERLAP
    assert not shuffled.faithful
    assert not build_gate.judge("openvino", ref[:10], ref[:10].copy(), 5, 10).faithful  # too few to judge
    assert "kept" in str(same) and "not faithful" in str(noisy)
    assert build_gate.precheck("openvino", ref[:32], ref[:32].copy()).faithful
    assert not build_gate.precheck("openvino", ref[:31], ref[:31].copy()).faithful


def test_the_gate_samples_neighbourhoods_across_the_whole_catalog():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4_000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    anchors, rows = build_gate.neighbourhoods(x, seed=3)
    assert len(rows) <= build_gate.budget(len(x)) == 4_000 // build_gate.BUDGET_SHARE
    assert list(rows[:len(anchors)]) == list(anchors) and len(set(rows.tolist())) == len(rows)
    assert anchors.max() > 2_000 and len(anchors) >= len(rows) // (build_gate.DEPTH + 1)  # not the first items
    for a in anchors[:5]:  # each anchor's nearest items, in the whole catalog, are among the pictures judged
        scores = x @ x[a]
        scores[a] = -np.inf
        assert set(np.argsort(-scores)[:build_gate.DEPTH].tolist()) <= set(rows.tolist())
    again, _ = build_gate.neighbourhoods(x, seed=3)
    np.testing.assert_array_equal(anchors, again)  # seeded: the same build judges the same items
    assert build_gate.budget(100) == 100 and build_gate.budget(1_000_000) == build_gate.MAX_BUDGET
