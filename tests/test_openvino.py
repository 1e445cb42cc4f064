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


def test_a_first_start_converts_both_towers_in_a_child_process(model_dir, tmp_path, monkeypatch, caplog):
    """The IR is written by `python -m stylishi.openvino_backend` (no conversion heap left in the server), and it is
    the same model: the vectors match an in-process conversion's."""
    import logging

    from stylishi import openvino_backend

    children = []
    real = openvino_backend.convert_in_child
    monkeypatch.setattr(openvino_backend, "convert_in_child", lambda *a, **k: children.append(a[1]) or real(*a, **k))
    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "child"))
    with caplog.at_level(logging.WARNING, logger="stylishi.openvino_backend"):
        child = Embedder.load(model_dir, device="cpu", mode="openvino", neighbour_gap=0.05)
    assert children == ["image_tower", "text_tower"] and "failed" not in caplog.text
    assert len(list((tmp_path / "child" / "openvino").glob("*/*_tower.xml"))) == 2
    monkeypatch.setattr(openvino_backend, "convert_in_child", lambda *a, **k: False)  # as without a usable child
    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "here"))
    here = Embedder.load(model_dir, device="cpu", mode="openvino", neighbour_gap=0.05)
    assert child.mode == here.mode == "openvino" and child.text_mode == here.text_mode == "openvino"
    from stylishi.demo import garment_picture

    pictures = [garment_picture("Dresses", "Red", "Solid", seed=1), garment_picture("Caps", "Blue", "Striped", seed=2)]
    np.testing.assert_allclose(child.embed_images(pictures), here.embed_images(pictures), atol=1e-5)
    np.testing.assert_allclose(child.embed_texts(TEXTS), here.embed_texts(TEXTS), atol=1e-5)


def test_a_child_that_cannot_convert_leaves_the_conversion_to_the_process(tmp_path, caplog):
    import logging

    import torch

    from stylishi import openvino_backend

    xml = tmp_path / "image_tower.xml"
    with caplog.at_level(logging.WARNING, logger="stylishi.openvino_backend"):
        ok = openvino_backend.convert_in_child((str(tmp_path / "no-such-model"), None), "image_tower",
                                               (torch.zeros(1, 3, 8, 8),), (), xml)
    assert not ok and not xml.exists()
    assert "converting the image_tower in a child process failed (exit 1" in caplog.text and "converting here" in caplog.text


def test_with_both_towers_compiled_the_weight_file_is_no_longer_mapped(model_dir, tmp_path):
    """The logit scale left in torch must not pin the safetensors map (and every page the fp32 probes read)."""
    import subprocess
    import sys

    code = ("import sys; from stylishi.embedder import Embedder\n"
            "e = Embedder.load(sys.argv[1], device='cpu', mode='openvino', neighbour_gap=0.05)\n"
            "assert e.text_mode == 'openvino', e.text_mode\n"
            "print(sum('model.safetensors' in line for line in open('/proc/self/maps')))\n")
    done = subprocess.run([sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "STYLISHI_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "0"
