#!/usr/bin/env python
"""StyliShi benchmark: per-stage query latency, embedding modes, index scaling, HTTP API, build, cold start, RSS.

    .venv/bin/python bench/benchmark.py                 # full run, ≤ 10 min on 2 cores; writes benchmarks.png
    .venv/bin/python bench/benchmark.py --quick         # smaller sizes, ≤ 3 min (a smoke run)
    .venv/bin/python bench/benchmark.py --index-only    # index scaling at 50k / 200k / 1M (~7 min)
    .venv/bin/python bench/benchmark.py --look-only     # shop the look alone (~3 min)
    .venv/bin/python bench/benchmark.py --memory-only   # the app's RSS serving the 50k catalog (~3 min)

Sections: in-process image query per embedding mode (stage timers and process CPU per query); fidelity of each mode
against fp32; the index build before (serial, fp32) and after (build_index.py's default flags), with its time by
stage and the build gate's verdict; HTTP load through the Gradio API and through POST /api/v1/search at 1, 2, 4 and
8 clients; a profile of one request (stage timers, server CPU per request from /proc); shop the look (detection and
one search per garment) with the demo's detector and the default detector's architecture; index search at 50k.

Everything runs offline on stand-ins: a full-size CLIP ViT-B/32 *architecture* with random weights (speed does not
depend on the weights), a 50k-item catalog of synthetic clustered 512-d vectors, generated garment pictures. Every
speed-up is a ratio against the fp32 eager baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]  # stylishi itself is imported as installed (scripts/setup.sh: pip install -e .)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

LINES: list[str] = []


def out(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def webcam_frame(img: Image.Image, seed: int) -> Image.Image:
    """A 640x480 frame with the garment in it, as a webcam would send."""
    rng = np.random.default_rng(seed)
    frame = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(200, 250, 3)))
    frame.paste(img.resize((440, 440)), (100 + int(rng.integers(-20, 20)), 20))
    return frame


def clustered(n: int, dim: int = 512, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    """Unit vectors in Gaussian clusters: shaped like CLIP embeddings of a product catalog."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    out_ = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out_[start:start + m] = centres[rng.integers(0, clusters, m)] + rng.normal(0, 0.7, (m, dim)).astype(np.float32)
    out_ /= np.linalg.norm(out_, axis=1, keepdims=True)
    return out_


# -- sections ------------------------------------------------------------------------------------------------
def make_model(work: Path, tiny: bool = False) -> Path:
    from stylishi.demo import VIT_B32, save_random_clip

    t = time.perf_counter()
    if tiny:  # a smoke test of this script only: its numbers mean nothing
        config = dict(image_size=224, patch_size=32, dim=64, vision=(64, 128, 2, 2), text=(64, 128, 2, 2))
        path = save_random_clip(work / "tiny-random", **config)
        out("model: TINY random CLIP (--tiny: checks the script, measures nothing)")
        return path
    path = save_random_clip(work / "vit-b-32-random", **VIT_B32)
    out(f"model: CLIP ViT-B/32 architecture, random weights, saved with save_pretrained in {time.perf_counter() - t:.1f} s")
    return path


def model_dim(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["projection_dim"])


def make_catalog(work: Path, model_dir: Path, n: int) -> Path:
    from stylishi import catalog

    vectors = clustered(n, dim=model_dim(model_dir))
    colours = ["Red", "Blue", "Black", "White", "Green", "Pink", "Grey", "Navy Blue"]
    items = pd.DataFrame({"id": [str(100000 + i) for i in range(n)], "name": [f"Product {i}" for i in range(n)],
                          "category": np.where(np.arange(n) % 3 == 0, "Footwear", "Apparel"),
                          "gender": np.where(np.arange(n) % 2 == 0, "Women", "Men"),
                          "colour": [colours[i % len(colours)] for i in range(n)]})
    # Synthetic vectors come from no picture, so the catalog has no thumbnails (results show the placeholder and
    # the start-up check that the model reproduces the catalog's own vectors has nothing to compare).
    t = time.perf_counter()
    manifest = catalog.write(work / f"catalog-{n}", vectors=vectors, items=items, thumbnails=[None] * n,
                             model={"id": str(model_dir), "mode": "fp32"})
    out(f"catalog: {n:,} synthetic items, index {manifest['index']['type']} ({manifest['index']['factory']}, "
        f"{manifest['index']['params']}), written in {time.perf_counter() - t:.1f} s")
    return work / f"catalog-{n}"


def bench_modes(model_dir: Path, catalog_dir: Path, n_queries: int) -> dict[str, dict]:
    """In-process image queries, per stage, for each embedding mode, on the same catalog."""
    from stylishi import catalog as catalog_mod
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder
    from stylishi.images import load_image
    from stylishi import SearchService

    cat = catalog_mod.load(catalog_dir)
    pictures = [jpeg(webcam_frame(item.image, i)) for i, item in enumerate(demo_items(limit=n_queries))]
    results = {}
    out()
    out(f"## In-process image query, {len(cat):,}-item catalog ({cat.manifest['index']['type']}), "
        f"{len(pictures)} queries (640x480 JPEG), 2 threads")
    out()
    out("| mode | decode+preprocess p50 / p95 | embed p50 / p95 | search p50 / p95 | format p50 | total p50 / p95 | speed-up vs fp32 (p50) |")
    out("|---|---|---|---|---|---|---|")
    for mode in ("fp32", "bf16", "int8", "openvino"):
        emb = Embedder.load(model_dir, device="cpu", mode=mode, check_fidelity=False)
        svc = SearchService(emb, cat)
        for p in pictures[:5]:
            svc.search_image(p, k=10)
        stages: dict[str, list[float]] = {}
        for p in pictures:
            cpu = time.process_time()
            for key, value in svc.search_image(p, k=10).timings_ms.items():
                stages.setdefault(key, []).append(value)
            stages.setdefault("core_ms", []).append((time.process_time() - cpu) * 1000)
        for p in pictures:  # decode alone (the service's "preprocess" is decode + the processor's resize/normalise)
            t = time.perf_counter()
            load_image(p, svc.limits)
            stages.setdefault("decode", []).append((time.perf_counter() - t) * 1000)
        results[mode] = stages
        base = pct(results["fp32"]["total"], 50)
        tot = pct(stages["total"], 50)
        out(f"| {mode}{precision(emb)} | {pct(stages['preprocess'], 50):.1f} / {pct(stages['preprocess'], 95):.1f} ms "
            f"| {pct(stages['embed'], 50):.1f} / {pct(stages['embed'], 95):.1f} ms "
            f"| {pct(stages['search'], 50):.2f} / {pct(stages['search'], 95):.2f} ms | {pct(stages['format'], 50):.2f} ms "
            f"| **{tot:.1f}** / {pct(stages['total'], 95):.1f} ms | {base / tot:.2f}x |")
    return results


def make_detector(work: Path, tiny: bool = False) -> Path:
    """The default Hub detector's architecture with random weights: Conditional DETR, ResNet-50 (transformers' own
    ResNet: the same layers as the timm one the real checkpoint names), 300 queries, 7 classes, and DETR's usual
    input (shortest side 800, longest 1333). Speed does not depend on the weights."""
    from transformers import (ConditionalDetrConfig, ConditionalDetrForObjectDetection,
                              ConditionalDetrImageProcessor, ResNetConfig)

    from stylishi.scenes import LOOK_CLASSES

    path = work / ("detector-tiny" if tiny else "conditional-detr-r50-random")
    if tiny:
        backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
        extra = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32,
                     encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10)
        size = {"shortest_edge": 128, "longest_edge": 192}
    else:
        backbone = ResNetConfig(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                                layer_type="bottleneck", out_features=["stage4"])
        extra = {}
        size = {"shortest_edge": 800, "longest_edge": 1333}
    config = ConditionalDetrConfig(backbone_config=backbone, use_timm_backbone=False, num_labels=len(LOOK_CLASSES),
                                   id2label=dict(enumerate(LOOK_CLASSES)), **extra)
    ConditionalDetrForObjectDetection(config).save_pretrained(path)
    ConditionalDetrImageProcessor(size=size).save_pretrained(path)
    return path


def bench_look(model_dir: Path, catalog_dir: Path, work: Path, n_queries: int, tiny: bool = False) -> None:
    """Shop the look in process: detection, then one search per garment (up to 3: the 3 most confident boxes, the
    threshold set to 0 so that every photo does the same work), on webcam-sized frames."""
    from stylishi import SearchService
    from stylishi import catalog as catalog_mod
    from stylishi.demo import SEEDS
    from stylishi.embedder import Embedder
    from stylishi.look import DEMO_DETECTOR, DetectorChoice, Looker, shop_the_look
    from stylishi.scenes import scene

    frames = [jpeg(scene(SEEDS["heldout"] + 900_000 + i).image.resize((640, 480))) for i in range(n_queries)]
    emb = Embedder.load(model_dir, device="cpu", mode="auto")
    svc = SearchService(emb, catalog_mod.load(catalog_dir))
    out()
    out(f"## Shop the look, {len(svc.catalog):,}-item catalog, {n_queries} generated outfit photos (640x480 JPEG), "
        f"up to 3 garments each, image tower {emb.mode}")
    out()
    out("| detector | garments per photo | detect p50 / p95 | searches p50 / p95 | total p50 / p95 |")
    out("|---|---:|---|---|---|")
    detectors = [("the offline demo's (Conditional DETR, tiny ResNet, 192×144 input)", DEMO_DETECTOR),
                 ("the default's architecture (Conditional DETR R50, 800 px, random weights)",
                  make_detector(work, tiny))]
    for label, path in detectors:
        looker = Looker(DetectorChoice(str(path), None, "benchmark"))
        params = sum(p.numel() for p in looker.detector().model.parameters()) / 1e6
        label = f"{label}, {params:.1f} M parameters"
        # threshold 0: every frame yields its 3 most confident boxes, so each query does the same work
        run = lambda f: shop_the_look(svc, looker, f, 10, threshold=0.0, max_garments=3)  # noqa: E731
        run(frames[0])
        stages: dict[str, list[float]] = {}
        garments = []
        for f in frames:
            look = run(f)
            garments.append(len(look.garments))
            for key, value in look.timings_ms.items():
                stages.setdefault(key, []).append(value)
        out(f"| {label} | {np.mean(garments):.1f} | {pct(stages['detect'], 50):.0f} / {pct(stages['detect'], 95):.0f} ms "
            f"| {pct(stages['search'], 50):.0f} / {pct(stages['search'], 95):.0f} ms "
            f"| **{pct(stages['total'], 50):.0f}** / {pct(stages['total'], 95):.0f} ms |")


def precision(emb) -> str:
    tower = getattr(emb, "_fast_image_tower", None)
    return f" ({tower.precision})" if tower is not None else ""


def bench_fidelity(model_dir: Path, limit: int | None = None) -> None:
    """Cosine to fp32 and top-10 overlap on the demo catalog (its first `limit` items), queries being webcam-like
    frames of its items."""
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder
    from stylishi.index import exact_top_k

    items = list(demo_items(limit=limit))
    catalog_pics = [it.image for it in items]
    queries = [webcam_frame(it.image, i) for i, it in enumerate(items[::4])]
    fp32 = Embedder.load(model_dir, device="cpu", mode="fp32")
    cat = np.concatenate([fp32.embed_images(catalog_pics[i:i + 32]) for i in range(0, len(catalog_pics), 32)])
    ref_q = fp32.embed_images(queries)
    ref_top = exact_top_k(cat, ref_q, 10)
    gram = cat @ cat.T
    spread = 1 - float(np.median(gram[~np.eye(len(cat), dtype=bool)]))
    nearest = 1 - np.sort(gram, axis=1)[:, -2]
    gap = float(np.percentile(nearest[nearest > 1e-6], 10))
    out()
    out(f"## Fidelity against fp32 ({len(items)}-item demo catalog embedded in fp32, {len(queries)} webcam-like queries)")
    out()
    out(f"Random weights pack pictures close together (median 1 - cosine between catalog items: {spread:.5f}; "
        f"10th percentile of nearest-neighbour gaps: {gap:.5f}), far closer than a trained CLIP does, so rank "
        "overlap here is a worst case. The last column is what the start-up fidelity gate decides with that gap.")
    out()
    out("| mode | cosine to fp32 (min / median) | top-10 overlap (mean) | gate verdict on this checkpoint |")
    out("|---|---|---|---|")
    for mode in ("bf16", "int8", "openvino"):
        emb = Embedder.load(model_dir, device="cpu", mode=mode, check_fidelity=False)
        q = emb.embed_images(queries)
        cos = np.sum(q * ref_q, axis=1)
        top = exact_top_k(cat, q, 10)
        overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top)]))
        gate = Embedder.load(model_dir, device="cpu", mode=mode, neighbour_gap=gap).mode
        out(f"| {mode}{precision(emb)} | {cos.min():.5f} / {np.median(cos):.5f} | {overlap:.3f} | {mode} → {gate} |")


def bench_index(sizes: list[int], n_queries: int = 200) -> None:
    import faiss

    from stylishi import index as faiss_index

    faiss.omp_set_num_threads(1)
    out()
    out(f"## Index search alone (1 thread, one query at a time, {n_queries} queries near catalog items)")
    out()
    out("| items | index (auto) | params | recall@10 vs exact | p50 / p95 | exact Flat p50 | speed-up | build | index size |")
    out("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        x = clustered(n, seed=n)
        rng = np.random.default_rng(1)
        q = x[rng.integers(0, n, n_queries)] + rng.normal(0, 0.02, (n_queries, x.shape[1])).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        factory = faiss_index.choose_factory(n)
        idx = faiss_index.build(x, factory)
        params = faiss_index.tune(idx, x)
        build_s = time.perf_counter() - t
        truth = faiss_index.exact_top_k(x, q, 10)
        faiss.omp_set_num_threads(1)
        lat, found = [], []
        for row in q:
            t = time.perf_counter()
            _, ids = idx.search(row[None], 10)
            lat.append((time.perf_counter() - t) * 1000)
            found.append(ids[0])
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x)
        flat_lat = []
        for row in q[:50]:
            t = time.perf_counter()
            flat.search(row[None], 10)
            flat_lat.append((time.perf_counter() - t) * 1000)
        with tempfile.NamedTemporaryFile(suffix=".faiss") as f:
            faiss_index.save(idx, f.name)
            size = os.path.getsize(f.name)
        knob = {k: v for k, v in params.items() if k != "recall@10"}
        out(f"| {n:,} | {factory} | {knob or '-'} | {recall:.3f} | {pct(lat, 50):.3f} / {pct(lat, 95):.3f} ms "
            f"| {pct(flat_lat, 50):.2f} ms | {pct(flat_lat, 50) / pct(lat, 50):.0f}x | {build_s:.1f} s | {size / 1e6:.0f} MB |")
        del x, idx, flat
    faiss.omp_set_num_threads(2)


def bench_build(model_dir: Path, work: Path, n: int) -> dict:
    """The build before (serial, fp32: the old default) and after (build_index.py's default flags: decoding,
    thumbnails and preprocessing on worker threads, the fast image path if the build gate accepts it), same items,
    same run; then the two catalogs' vectors compared."""
    from stylishi import builder
    from stylishi import catalog as catalog_mod
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder
    from stylishi.index import exact_top_k

    records = [builder.Record(id=it.id, image=jpeg(it.image), metadata=it.metadata) for it in demo_items(limit=n)]
    runs = {}
    for name, options in (("before: serial, fp32", dict(workers=0, fast=False)),
                          ("after: default flags", dict(fast=True))):
        emb = Embedder.load(model_dir, device="cpu", mode="fp32")
        runs[name] = builder.build(records, emb, work / f"build-{len(runs)}", progress=False, **options)
    before, after = runs.values()
    out()
    out(f"## Index build ({n} JPEG product pictures → vectors, thumbnails, index, calibration, validation)")
    out()
    out("| build | workers | embedding | images/s end to end | speed-up | embedding pass images/s |")
    out("|---|---|---|---|---|---|")
    for name, r in runs.items():
        pass_s = r.stages_s.get("embedding pass (wall)", r.seconds)
        workers = 0 if r is before else builder.default_workers()
        mode = r.embed_mode + (f" ({r.fp32_engine})" if r.embed_mode == "fp32" and r.fp32_engine != "torch" else "")
        out(f"| {name} | {workers} | {mode} | **{r.images_per_s:.1f}** | {r.images_per_s / before.images_per_s:.2f}x "
            f"| {r.items / pass_s:.1f} |")
    out()
    out("Where the time goes (seconds; stages on worker threads are summed over the threads, so with workers they "
        "add up to more than the wall time):")
    out()
    out("| stage | before | after |")
    out("|---|---|---|")
    for stage in dict.fromkeys([*before.stages_s, *after.stages_s]):
        out(f"| {stage} | {before.stages_s.get(stage, 0):.2f} | {after.stages_s.get(stage, 0):.2f} |")
    out(f"| **total (wall)** | **{before.seconds:.2f}** | **{after.seconds:.2f}** |")
    out()
    for verdict in after.gate:
        out(f"Build gate (during the build): {verdict}")
    vb = catalog_mod.load(before.out).store.vectors(np.arange(before.items))
    va = catalog_mod.load(after.out).store.vectors(np.arange(after.items))
    cos = np.sum(vb * va, axis=1) / (np.linalg.norm(vb, axis=1) * np.linalg.norm(va, axis=1))
    tb, ta = exact_top_k(vb, vb, 11), exact_top_k(va, va, 11)
    overlap = float(np.mean([len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(tb, ta)]))
    out(f"Benchmark's own check, all {before.items} items, after-build vectors against the fp32 build's: cosine min "
        f"{cos.min():.5f} / median {np.median(cos):.5f}; top-10 neighbour overlap {overlap:.3f} "
        f"(targets: ≥ 0.999 and ≥ 0.95).")
    return {name: r.images_per_s for name, r in runs.items()}


# -- the HTTP API ----------------------------------------------------------------------------------------------
def start_app(catalog_dir: Path, port: int, mode: str) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "STYLISHI_EMBED_MODE": mode, "STYLISHI_NO_FALLBACK": "1",
           "STYLISHI_RATE_LIMIT": "0"}  # one address sends thousands of requests here
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(catalog_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - t < 180:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited: {proc.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).read(100)
            break
        except OSError:
            time.sleep(0.1)
    ready = time.perf_counter() - t
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain logs
    return proc, ready


_DEFAULTS: dict[str, list] = {}


def http_call(base: str, api_name: str, data: list) -> list:
    """POST /gradio_api/call/<api_name>, then read its event stream: the outputs, or RuntimeError on an error event.
    Inputs left out are sent as the endpoint's declared defaults (raw HTTP must send every input)."""
    if api_name not in _DEFAULTS:
        info = json.loads(urllib.request.urlopen(f"{base}/gradio_api/info", timeout=30).read())
        _DEFAULTS[api_name] = [p.get("parameter_default") for p in info["named_endpoints"][f"/{api_name}"]["parameters"]]
    data = data + _DEFAULTS[api_name][len(data):]
    req = urllib.request.Request(f"{base}/gradio_api/call/{api_name}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/{api_name}/{event_id}", timeout=60) as stream:
        event = None
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(line[:200])
                return json.loads(line[5:])
    raise RuntimeError("the event stream ended without a result")


def _form(picture: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + picture + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n10"
            f"\r\n--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


def gradio_search(base: str, picture: bytes) -> float:
    """One image search the way a browser does it: upload, call, read the event stream. Returns ms."""
    t = time.perf_counter()
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"q.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + picture + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/gradio_api/upload", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    path = json.loads(urllib.request.urlopen(req, timeout=30).read())[0]
    picture_data = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "q.jpg"}
    outputs = http_call(base, "search_image", [picture_data, 10, None])
    if not outputs[1] or outputs[1][0]["rank"] != 1:
        raise RuntimeError("an image search returned no results")
    return (time.perf_counter() - t) * 1000


def rest_text_search(base: str, text: str) -> float:
    """One text search through POST /api/v1/search (a urlencoded form). Returns ms."""
    import urllib.parse

    t = time.perf_counter()
    req = urllib.request.Request(f"{base}/api/v1/search", data=urllib.parse.urlencode({"text": text, "k": 10}).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    results = json.loads(urllib.request.urlopen(req, timeout=60).read())
    if not results or results[0]["rank"] != 1:
        raise RuntimeError("a text search returned no results")
    return (time.perf_counter() - t) * 1000


TEXTS = ("red dress", "blue striped shirt for men", "black leather shoes", "a green cap", "navy blue trousers",
         "white sneakers", "a pink polka dot summer dress with short sleeves", "beige handbag")


def memory_steps(pid: int, base: str, pictures: list[bytes], n: int = 20) -> list[tuple[str, float, float]]:
    """The server's RSS (now, peak) after start-up, after image queries, after text queries, after both again:
    a tower used only by text queries shows up only once a text query has run."""
    steps = [("after start-up (warm-up: one image, one text query)", *rss_mb(pid))]
    for i in range(n):
        rest_search(base, pictures[i % len(pictures)])
    steps.append((f"after {n} image queries", *rss_mb(pid)))
    for i in range(n):
        rest_text_search(base, TEXTS[i % len(TEXTS)])
    steps.append((f"after {n} text queries", *rss_mb(pid)))
    for i in range(n):
        rest_search(base, pictures[(i + 7) % len(pictures)])
        rest_text_search(base, TEXTS[(i + 3) % len(TEXTS)])
    steps.append((f"after {n} more of each", *rss_mb(pid)))
    return steps


def bench_memory(catalog_dir: Path, mode: str, port: int = 7932) -> None:
    """The app's memory serving the catalog (RSS from /proc), step by step, on a first start (an empty cache: the
    towers are converted, as on every start of a Space with no persistent disk) and on a second (from the cache)."""
    from stylishi.demo import demo_items

    pictures = [jpeg(webcam_frame(it.image, i)) for i, it in enumerate(demo_items(limit=16))]
    runs = {}
    for start in ("first start", "second start"):
        proc, ready = start_app(catalog_dir, port, mode)
        base = f"http://127.0.0.1:{port}"
        try:
            runs[start] = (ready, memory_steps(proc.pid, base, pictures),
                           json.loads(urllib.request.urlopen(base + "/stats", timeout=10).read()))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out()
    out(f"## App memory (app.py with the {catalog_dir.name} index, STYLISHI_EMBED_MODE={mode}; RSS of the server "
        "process from /proc/<pid>/status)")
    out()
    for start, (ready, _, stats) in runs.items():
        out(f"{start}: ready in {ready:.1f} s; /stats embed_mode {stats['embed_mode']}, "
            f"text_mode {stats.get('text_mode', '-')}")
    out()
    out("| step | " + " | ".join(f"{s}: RSS now / peak" for s in runs) + " |")
    out("|---|" + "---:|" * len(runs))
    for i, (label, *_) in enumerate(next(iter(runs.values()))[1]):
        out(f"| {label} | " + " | ".join(f"{r[1][i][1]:.0f} / {r[1][i][2]:.0f} MB" for r in runs.values()) + " |")


def rest_search(base: str, picture: bytes) -> float:
    """One image search through POST /api/v1/search: one request. Returns ms."""
    t = time.perf_counter()
    body, kind = _form(picture)
    req = urllib.request.Request(f"{base}/api/v1/search", data=body, headers={"Content-Type": kind})
    results = json.loads(urllib.request.urlopen(req, timeout=60).read())
    if not results or results[0]["rank"] != 1:
        raise RuntimeError("an image search returned no results")
    return (time.perf_counter() - t) * 1000


ROUTES = {"Gradio API": gradio_search, "REST /api/v1/search": rest_search}


def load_run(search, base: str, pictures: list[bytes], clients: int, seconds: float) -> dict:
    lat: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            try:
                ms = search(base, pictures[i % len(pictures)])
                with lock:
                    lat.append(ms)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(exc)[:200])
            i += clients

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return {"n": len(lat), "qps": len(lat) / wall, "p50": pct(lat, 50), "p95": pct(lat, 95), "errors": errors}


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def bench_http(catalog_dir: Path, seconds: float, mode: str, modes: dict, clients_list=(1, 2, 4, 8),
               port: int = 7931) -> dict:
    from stylishi.demo import demo_items

    pictures = [jpeg(webcam_frame(it.image, i)) for i, it in enumerate(demo_items(limit=64))]
    proc, ready = start_app(catalog_dir, port, mode)
    base = f"http://127.0.0.1:{port}"
    load: dict[str, dict[int, dict]] = {}
    try:
        for search in ROUTES.values():
            for p in pictures[:5]:
                search(base, p)
        out()
        out(f"## HTTP (app.py with the {catalog_dir.name} index, embed mode {mode}; Gradio API: upload → call → "
            "event stream; REST: one multipart POST)")
        out()
        out(f"Cold start with cached artifacts (process start → HTTP 200, model + index loaded, warm-up query done): "
            f"**{ready:.1f} s**. The load generator runs on the same 2 cores as the server.")
        out()
        out("| route | clients | seconds | requests | queries/s | p50 | p95 | errors |")
        out("|---|---|---|---|---|---|---|---|")
        for route, search in ROUTES.items():
            for clients in clients_list:
                r = load_run(search, base, pictures, clients, seconds)
                load.setdefault(route, {})[clients] = r
                out(f"| {route} | {clients} | {seconds:.0f} | {r['n']} | {r['qps']:.1f} | {r['p50']:.1f} ms "
                    f"| {r['p95']:.1f} ms | {len(r['errors'])} |")
                if r["errors"]:
                    out(f"first error: {r['errors'][0]}")
        profile(proc.pid, base, pictures, modes[mode])
        from gradio_client import Client, handle_file

        client = Client(base + "/", verbose=False, analytics_enabled=False, download_files=False)
        qfile = Path(tempfile.mkdtemp()) / "q.jpg"
        qfile.write_bytes(pictures[0])
        lat = []
        for _ in range(10):
            t = time.perf_counter()
            client.predict(handle_file(str(qfile)), api_name="/search_image")
            lat.append((time.perf_counter() - t) * 1000)
        out()
        out(f"gradio_client (download_files=False), 1 client, 10 calls: p50 {pct(lat, 50):.1f} ms, "
            f"p95 {pct(lat, 95):.1f} ms (includes the client's ~50 ms queue polling)")
        for i in range(20):  # the text tower too: its memory counts only once a text query has run
            rest_text_search(base, TEXTS[i % len(TEXTS)])
        cur, peak = rss_mb(proc.pid)
        out()
        out(f"App memory serving {catalog_dir.name} (after image and text queries): RSS {cur:.0f} MB now, "
            f"peak {peak:.0f} MB")
        stats = json.loads(urllib.request.urlopen(base + "/stats", timeout=10).read())
        out(f"/stats: embed_mode {stats['embed_mode']}, {stats['queries']} queries, {stats['errors']} errors, "
            f"REST queue {stats.get('rest')}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return load


def profile(pid: int, base: str, pictures: list[bytes], stages: dict[str, list[float]], n: int = 40) -> None:
    """Where one image request's time and CPU go: the service's own stage timers (in process, same mode), and the
    server process's CPU per request over `n` sequential requests on each route (utime + stime from /proc)."""
    out()
    out(f"## Profile of one image request (sequential, {n} requests per route; server CPU from /proc/<pid>/stat)")
    out()
    med = {key: pct(values, 50) for key, values in stages.items()}
    core = {}
    walls = {}
    for route, search in ROUTES.items():
        before = cpu_ms(pid)
        lat = [search(base, pictures[i % len(pictures)]) for i in range(n)]
        core[route] = (cpu_ms(pid) - before) / n
        walls[route] = pct(lat, 50)
    service = med["core_ms"]
    out("| stage | wall p50 (ms) | where measured |")
    out("|---|---|---|")
    out(f"| decode (JPEG → RGB, checks) | {med['decode']:.1f} | in process, `load_image` |")
    out(f"| preprocess (resize, crop, normalise) | {med['preprocess'] - med['decode']:.1f} | service timer "
        "(`preprocess` − decode) |")
    out(f"| embed (image tower) | {med['embed']:.1f} | service timer |")
    out(f"| search (FAISS) | {med['search']:.2f} | service timer |")
    out(f"| format (results, calibration) | {med['format']:.2f} | service timer |")
    out(f"| **service total** | **{med['total']:.1f}** | **{service:.0f} core-ms** (process CPU per query) |")
    for route in ROUTES:
        out(f"| {route}: round trip | {walls[route]:.1f} | client; server CPU **{core[route]:.0f} core-ms** per "
            f"request, of which **{max(0.0, core[route] - service):.0f}** outside the search (HTTP, "
            f"{'upload, queue, event stream, gallery, session' if 'Gradio' in route else 'form parsing, JSON'}) |")
    out()
    out(f"Ceiling on 2 cores from server CPU alone: Gradio API {2000 / core['Gradio API']:.0f} q/s, REST "
        f"{2000 / core['REST /api/v1/search']:.0f} q/s (less what the load generator on the same cores takes).")


def plot(path: Path, modes: dict, load: dict, builds: dict | None) -> None:
    """Latency per embedding mode, build throughput, and throughput/latency per client count: one PNG."""
    try:
        import matplotlib
    except ImportError:
        out(f"(no plot: matplotlib is not installed; pip install -r requirements-dev.txt)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if builds else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    ax = axes[0]
    names = list(modes)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [pct(modes[m]["total"], 50) for m in names], 0.4, label="p50")
    ax.bar(x + 0.2, [pct(modes[m]["total"], 95) for m in names], 0.4, label="p95")
    ax.set_xticks(x, names)
    ax.set_ylabel("ms per image query (in process)")
    ax.set_title("Latency per embedding mode")
    ax.legend()
    ax = axes[1]
    twin = ax.twinx()
    for route, runs in load.items():
        clients = sorted(runs)
        line = ax.plot(clients, [runs[c]["qps"] for c in clients], marker="o", label=f"{route} q/s")[0]
        twin.plot(clients, [runs[c]["p50"] for c in clients], marker="x", linestyle="--", color=line.get_color(),
                  label=f"{route} p50")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("queries/s (solid)")
    twin.set_ylabel("p50 ms (dashed)")
    ax.set_xticks([1, 2, 4, 8])
    ax.set_title("HTTP throughput and latency")
    ax.legend(loc="upper left", fontsize=8)
    if builds:
        ax = axes[2]
        ax.bar(range(len(builds)), list(builds.values()), color=["#999999", "#d6336c"])
        ax.set_xticks(range(len(builds)), [name.split(":")[0] for name in builds])
        ax.set_ylabel("images/s end to end")
        ax.set_title("Index build")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    out()
    out(f"plot: {path.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run (≤ 3 min)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.md"), help="where to write the table")
    ap.add_argument("--plot", default=None,
                    help="where to write the PNG plot (default: benchmarks.png beside BENCHMARKS.md for a full run, "
                         "beside --out otherwise)")
    ap.add_argument("--skip-http", action="store_true", help="skip the HTTP API section")
    ap.add_argument("--index-only", action="store_true", help="only the index scaling section (50k, 200k, 1M)")
    ap.add_argument("--look-only", action="store_true", help="only the shop-the-look section (~3 min)")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the app's memory serving the catalog, after image and text queries (~3 min)")
    ap.add_argument("--memory-mode", default="auto", choices=("auto", "fp32", "bf16", "int8", "openvino"),
                    help="the app's STYLISHI_EMBED_MODE for --memory-only (default auto)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model: checks the script, measures nothing")
    args = ap.parse_args()

    from stylishi.config import set_threads

    threads = set_threads(2)
    import faiss
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    small = args.quick or args.tiny
    out(f"# StyliShi benchmark ({'quick' if small else 'full'}) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    out()
    out(f"Machine: {cpu}, {os.cpu_count()} cores, {threads} threads; Python {platform.python_version()}, "
        f"torch {torch.__version__}, faiss {faiss.__version__}, load average {os.getloadavg()[0]:.2f} at start.")
    out()
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stylishi-bench-") as tmp:
        work = Path(tmp)
        if args.index_only:
            bench_index([50_000, 200_000, 1_000_000])
            return finish(args, t_all)
        os.environ["STYLISHI_CACHE"] = str(work / "cache")
        model_dir = make_model(work, tiny=args.tiny)
        n_catalog = 5_000 if small else 50_000
        catalog_dir = make_catalog(work, model_dir, n_catalog)
        if args.look_only:
            bench_look(model_dir, catalog_dir, work, 5 if small else 20, tiny=args.tiny)
            return finish(args, t_all)
        if args.memory_only:
            bench_memory(catalog_dir, args.memory_mode)
            return finish(args, t_all)
        modes = bench_modes(model_dir, catalog_dir, 40 if small else 200)
        bench_fidelity(model_dir, limit=200 if small else None)  # the whole demo catalog in fp32 takes ~80 s
        builds = bench_build(model_dir, work, 160 if small else 1024)
        bench_look(model_dir, catalog_dir, work, 5 if small else 20, tiny=args.tiny)
        load = {}
        if not args.skip_http:
            best = min(("fp32", "int8", "openvino"), key=lambda m: pct(modes[m]["total"], 50))
            load = bench_http(catalog_dir, 3 if small else 10, best, modes)
        # 200k and 1M items: --index-only (~7 min on its own; see BENCHMARKS.md)
        bench_index([20_000] if small else [50_000])
        plot(Path(args.plot) if args.plot else (ROOT / "benchmarks.png" if not small else Path(args.out).with_suffix(".png")),
             modes, load, builds)
    finish(args, t_all)


def finish(args, t_all: float) -> None:
    _, peak = rss_mb()
    out()
    out(f"Benchmark process peak RSS {peak:.0f} MB; whole run {time.perf_counter() - t_all:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f} at the end.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(LINES) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
