"""The OpenVINO text tower: it gives torch's text vectors (its own fidelity gate, like the image tower's), a failing
gate keeps torch's tower, and with both towers compiled the torch model holds no weights."""
from __future__ import annotations

import numpy as np
import pytest

from stylishi import fidelity
from stylishi.embedder import Embedder

pytest.importorskip("openvino")

TEXTS = ["red dress", "a navy blue checked shirt with long sleeves and a collar", "green cap", "x",
         "beige leather shoes for women, size 38, worn twice"]


@pytest.fixture(scope="module", params=["clip", "siglip"])
def model_dir(request, tmp_path_factory):
    from stylishi.demo import save_tiny_clip
    from stylishi.standins import save_tiny_siglip

    folder = tmp_path_factory.mktemp(request.param)
    return save_tiny_clip(folder) if request.param == "clip" else save_tiny_siglip(folder)


def test_the_openvino_text_tower_gives_torchs_vectors(model_dir):
    fp32 = Embedder.load(model_dir, device="cpu", mode="fp32")
    fast = Embedder.load(model_dir, device="cpu", mode="openvino", neighbour_gap=0.05)
    assert fast.mode == fast.text_mode == "openvino" and fast.text_fidelity_cosine >= fidelity.TEXT_MIN_COSINE
    for texts in (TEXTS, TEXTS[:1], TEXTS[1:2]):  # a batch of mixed lengths, a short text, a long one alone
        cosine = np.sum(fast.embed_texts(texts) * fp32.embed_texts(texts), axis=1)
        assert cosine.min() >= fidelity.TEXT_MIN_COSINE
    for name in (*fast.family.image_only, *fast.family.text_only):  # both towers compiled: torch's are gone
        assert getattr(fast.model, name, None) is None
    assert sum(p.numel() for p in fast.model.parameters()) <= 2  # the logit scale (and SigLIP's bias) only
    assert fast.embed_texts([]).shape == (0, fast.dim)


def test_a_failing_text_gate_keeps_torchs_text_tower(model_dir, monkeypatch, caplog):
    import logging

    want = Embedder.load(model_dir, device="cpu", mode="fp32").embed_texts(TEXTS)
    monkeypatch.setattr(fidelity, "TEXT_MIN_COSINE", 1.000001)  # no tower can be that close
    with caplog.at_level(logging.INFO, logger="stylishi.embedder"):
        fast = Embedder.load(model_dir, device="cpu", mode="openvino", neighbour_gap=0.05)
    assert fast.mode == "openvino" and fast.text_mode == "fp32" and fast.text_fidelity_cosine is None
    assert "OpenVINO text embeddings" in caplog.text and "the text tower stays fp32" in caplog.text
    assert getattr(fast.model, fast.family.text_tower) is not None
    np.testing.assert_allclose(fast.embed_texts(TEXTS), want, atol=1e-6)


def test_a_failing_image_gate_keeps_torch_for_both(model_dir):
    strict = Embedder.load(model_dir, device="cpu", mode="openvino", neighbour_gap=1e-12)
    assert strict.mode == strict.text_mode == "fp32"
    assert getattr(strict.model, strict.family.text_tower) is not None


def test_stats_show_the_text_path(demo_index):
    import stylishi
    from stylishi.serving import service_stats

    stats = service_stats(stylishi.load(demo_index, mode="openvino"))
    assert stats["embed_mode"] in ("openvino", "fp32") and stats["text_mode"] in ("openvino", "fp32")
