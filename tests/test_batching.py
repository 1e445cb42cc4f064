"""Micro-batching of concurrent picture queries (stylishi.batching): each caller gets its own rows back, callers that
arrive during a pass share the next one, errors reach every caller of that pass, and through the real OpenVINO
image tower concurrent queries get the vectors they would get alone."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from stylishi.batching import MicroBatcher


class GatedRun:
    """rows → rows * 2, holding the first pass until told, so that callers queue up behind it."""

    def __init__(self):
        self.release = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if not self.sizes:
            self.release.wait(5)
        self.sizes.append(len(rows))
        return rows * 2


def queued(batcher: MicroBatcher, n: int) -> None:
    """Wait until n requests sit in the batcher's queue."""
    for _ in range(500):
        with batcher._cv:
            if len(batcher._queue) >= n:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{n} requests never queued")


def test_callers_arriving_during_a_pass_share_the_next_and_get_their_own_rows():
    run = GatedRun()
    batcher = MicroBatcher(run, max_rows=8)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher, np.full((1, 3), 100.0))
        queued(batcher, 0)
        while not run.sizes and not batcher._busy:
            threading.Event().wait(0.01)
        rest = [pool.submit(batcher, np.full((1, 3), float(i))) for i in range(5)]
        queued(batcher, 5)
        run.release.set()
        assert first.result(5).tolist() == [[200.0] * 3]
        assert [f.result(5).tolist() for f in rest] == [[[2.0 * i] * 3] for i in range(5)]
    assert run.sizes == [1, 5]
    assert batcher.snapshot() == {"passes": 2, "rows": 6, "largest": 5, "mean": 3.0}


def test_a_pass_takes_no_more_than_max_rows_and_a_big_batch_runs_alone():
    run = GatedRun()
    batcher = MicroBatcher(run, max_rows=4)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, np.zeros((1, 2)))
        while not batcher._busy:
            threading.Event().wait(0.01)
        big = pool.submit(batcher, np.ones((6, 2)))
        queued(batcher, 1)
        small = [pool.submit(batcher, np.full((1, 2), 3.0)) for _ in range(3)]
        queued(batcher, 4)
        run.release.set()
        assert big.result(5).shape == (6, 2) and float(big.result().sum()) == 24.0
        assert all(f.result(5).tolist() == [[6.0, 6.0]] for f in small)
        first.result(5)
    assert run.sizes == [1, 6, 3]


def test_an_error_in_a_pass_reaches_each_caller_of_that_pass_and_the_next_pass_runs():
    calls = []

    def run(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("tower failed")
        return rows

    batcher = MicroBatcher(run)
    with pytest.raises(RuntimeError, match="tower failed"):
        batcher(np.zeros((1, 2)))
    assert batcher(np.ones((2, 2))).tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_concurrent_queries_through_the_openvino_tower_match_their_single_vectors(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    import torch
    from PIL import Image

    from stylishi.demo import garment_picture, save_tiny_clip
    from stylishi.embedder import Embedder

    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "cache"))
    emb = Embedder.load(save_tiny_clip(tmp_path / "clip"), device="cpu", mode="openvino", check_fidelity=False)
    assert emb.mode == "openvino"
    pictures = [garment_picture(t, c, "Solid", seed=i).resize((96, 96), Image.Resampling.BILINEAR)
                for i, (t, c) in enumerate([("Dresses", "Red"), ("Caps", "Blue"), ("Skirts", "Green"),
                                            ("Handbags", "Black"), ("Jackets", "Yellow"), ("Heels", "Pink")] * 4)]
    alone = np.concatenate([emb.embed_images([p]) for p in pictures])
    torch.set_num_threads(1)
    with ThreadPoolExecutor(8) as pool:
        together = np.concatenate(list(pool.map(lambda p: emb.embed_images([p]), pictures)))
    assert np.min(np.sum(alone * together, axis=1)) > 0.999  # each caller got its own picture's vector back
    stats = emb.batching()
    assert stats["rows"] >= 2 * len(pictures) and stats["largest"] >= 2, stats  # some queries did share a pass
