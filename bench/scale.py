#!/usr/bin/env python
"""StyliShi beyond one machine: Milvus Lite against FAISS on one catalog, and the Ray build against one process.

    .venv/bin/python bench/scale.py                  # 50k synthetic catalog + 384-picture build (~6 min on 2 cores)
    .venv/bin/python bench/scale.py --items 10000    # a quicker store comparison
    .venv/bin/python bench/scale.py --no-build       # stores only

Needs the scale extra (requirements-scale.txt). Offline: synthetic clustered 512-d unit vectors (like CLIP's) with a
colour column for the filtered queries; the build part embeds the offline demo's pictures with its tiny CLIP.
Latency is one query at a time, median over the queries, after a warm-up; recall@10 is against exact search.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import faiss

from stylishi import index as faiss_index
from stylishi import milvus_store
from stylishi.store import FaissStore, Selection

COLOURS = ["Red", "Blue", "Black", "White", "Green", "Grey", "Navy", "Pink"]


def synthetic(n: int, dim: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 1000, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    meta = pd.DataFrame({"colour": np.array(COLOURS, dtype=object)[rng.integers(0, len(COLOURS), n)]})
    queries = vectors[rng.choice(n, 200, replace=False)] + 0.02 * rng.normal(size=(200, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, meta, queries


def timed(store, queries, selection=None) -> tuple[float, np.ndarray]:
    for q in queries[:5]:
        store.search(q[None], 10, selection)
    times, rows = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, r = store.search(q[None], 10, selection)
        times.append((time.perf_counter() - t0) * 1000)
        rows.append(r[0])
    return float(np.median(times)), np.array(rows)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def stores(n: int, work: Path) -> list[dict]:
    vectors, meta, queries = synthetic(n)
    truth = faiss_index.exact_top_k(vectors, queries, 10)
    mask = meta["colour"].isin(["Red", "Blue"]).to_numpy()
    selection = Selection({"colour": ("Red", "Blue")}, np.flatnonzero(mask).astype(np.int64))
    sub = selection.rows
    truth_f = sub[faiss_index.exact_top_k(vectors[sub], queries, 10)]
    out = []
    for label, make in [
        ("FAISS Flat", lambda: FaissStore.build(vectors, "Flat")),
        (f"FAISS auto ({faiss_index.choose_factory(n)})", lambda: _faiss_auto(vectors)),
        ("Milvus Lite FLAT", lambda: milvus_store.MilvusStore.build(
            str(work / "flat.db"), "flat", vectors, meta, model_id="bench", filter_columns=["colour"],
            index={"index_type": "FLAT", "params": {}, "search_params": {}})),
        (f"Milvus Lite auto ({milvus_store.choose_index(n)['index_type']})", lambda: milvus_store.MilvusStore.build(
            str(work / "auto.db"), "auto", vectors, meta, model_id="bench", filter_columns=["colour"])),
    ]:
        t0 = time.perf_counter()
        store = make()
        build_s = time.perf_counter() - t0
        p50, found = timed(store, queries)
        p50_f, found_f = timed(store, queries, selection)
        out.append({"store": label, "items": n, "build_s": round(build_s, 1), "p50_ms": round(p50, 2),
                    "recall@10": round(recall(found, truth), 3), "filtered_p50_ms": round(p50_f, 2),
                    "filtered_recall@10": round(recall(found_f, truth_f), 3)})
        print(json.dumps(out[-1]), flush=True)
        if hasattr(store, "close"):
            store.close()
    return out


def _faiss_auto(vectors):
    built = faiss_index.build_tuned(vectors, "auto")
    return FaissStore(built.index)


def builds(work: Path) -> dict:
    """The demo pictures embedded in one process and on a local 2-worker Ray, same artifact, wall time of each."""
    from stylishi import builder, catalog
    from stylishi.embedder import Embedder

    demo = work / "demo"
    builder.build_demo(demo, progress=False)
    embedder = Embedder.load(demo / "model", device="cpu", mode="fp32")
    times = {}
    for label, ray, folder in (("single process", None, "single"), ("Ray, 2 local workers", "local", "ray")):
        t0 = time.perf_counter()
        builder.build(builder.folder_records(demo / "catalog_images"), embedder, work / folder,
                      progress=False, calibrate=False, ray=ray)
        times[label] = round(time.perf_counter() - t0, 1)
    a, b = catalog.load(work / "single"), catalog.load(work / "ray")
    same = a.items["id"].tolist() == b.items["id"].tolist()
    cos = float(np.min(np.sum(a.store.vectors(np.arange(len(a))) * b.store.vectors(np.arange(len(b))), axis=1)))
    result = {"items": len(a), **times, "ratio (Ray / single)": round(times["Ray, 2 local workers"] /
                                                                    times["single process"], 2),
              "same ids, same order": same, "min cosine": round(cos, 6)}
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    faiss.omp_set_num_threads(1)  # single queries: one thread is never slower (see BENCHMARKS.md), as the app runs
    with tempfile.TemporaryDirectory(prefix="stylishi-scale-") as tmp:
        rows = stores(args.items, Path(tmp))
        flat = {r["store"]: r for r in rows}
        ratio = flat["Milvus Lite FLAT"]["p50_ms"] / flat["FAISS Flat"]["p50_ms"]
        print(f"Milvus Lite FLAT / FAISS Flat p50 latency: {ratio:.1f}x")
        if not args.no_build:
            builds(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
