#!/usr/bin/env python
"""StyliShi benchmark: per-stage query latency, embedding modes, index scaling, HTTP API, build, cold start, RSS.

    .venv/bin/python bench/benchmark.py                 # full run, ~14 min on 2 cores (half is the 1M index)
    .venv/bin/python bench/benchmark.py --quick         # smaller sizes, ~3 min (a smoke run)

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
def make_model(work: Path) -> Path:
    from stylishi.demo import VIT_B32, save_random_clip

    t = time.perf_counter()
    path = save_random_clip(work / "vit-b-32-random", **VIT_B32)
    out(f"model: CLIP ViT-B/32 architecture, random weights, saved with save_pretrained in {time.perf_counter() - t:.1f} s")
    return path


def make_catalog(work: Path, model_dir: Path, n: int) -> Path:
    from stylishi import catalog

    vectors = clustered(n)
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
            for key, value in svc.search_image(p, k=10).timings_ms.items():
                stages.setdefault(key, []).append(value)
        results[mode] = stages
        base = pct(results["fp32"]["total"], 50)
        tot = pct(stages["total"], 50)
        out(f"| {mode}{precision(emb)} | {pct(stages['preprocess'], 50):.1f} / {pct(stages['preprocess'], 95):.1f} ms "
            f"| {pct(stages['embed'], 50):.1f} / {pct(stages['embed'], 95):.1f} ms "
            f"| {pct(stages['search'], 50):.2f} / {pct(stages['search'], 95):.2f} ms | {pct(stages['format'], 50):.2f} ms "
            f"| **{tot:.1f}** / {pct(stages['total'], 95):.1f} ms | {base / tot:.2f}x |")
    return results


def precision(emb) -> str:
    tower = getattr(emb, "_fast_image_tower", None)
    return f" ({tower.precision})" if tower is not None else ""


def bench_fidelity(model_dir: Path) -> None:
    """Cosine to fp32 and top-10 overlap on the demo catalog, queries being webcam-like frames of its items."""
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder
    from stylishi.index import exact_top_k

    items = list(demo_items())
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


def bench_build(model_dir: Path, work: Path, n: int) -> None:
    from stylishi import builder
    from stylishi.demo import demo_items
    from stylishi.embedder import Embedder

    records = [builder.Record(id=it.id, image=jpeg(it.image), metadata=it.metadata) for it in demo_items(limit=n)]
    out()
    out(f"## Index build ({n} JPEG product pictures → vectors, thumbnails, index, validation)")
    out()
    out("| embed mode | images/s | speed-up vs fp32 |")
    out("|---|---|---|")
    base = None
    for mode in ("fp32", "bf16"):
        emb = Embedder.load(model_dir, device="cpu", mode=mode)
        report = builder.build(records, emb, work / f"build-{mode}", progress=False)
        base = base or report.images_per_s
        out(f"| {mode} | {report.images_per_s:.1f} | {report.images_per_s / base:.2f}x |")


# -- the HTTP API ----------------------------------------------------------------------------------------------
def start_app(catalog_dir: Path, port: int, mode: str) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "STYLISHI_EMBED_MODE": mode, "STYLISHI_NO_FALLBACK": "1"}
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


def http_call(base: str, api_name: str, data: list) -> list:
    """POST /gradio_api/call/<api_name>, then read its event stream: the outputs, or RuntimeError on an error event."""
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


def http_search(base: str, picture: bytes) -> float:
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


def load_run(base: str, pictures: list[bytes], clients: int, seconds: float) -> dict:
    lat: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            try:
                ms = http_search(base, pictures[i % len(pictures)])
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


def bench_http(catalog_dir: Path, seconds: float, mode: str, port: int = 7931) -> None:
    from stylishi.demo import demo_items

    pictures = [jpeg(webcam_frame(it.image, i)) for i, it in enumerate(demo_items(limit=64))]
    proc, ready = start_app(catalog_dir, port, mode)
    base = f"http://127.0.0.1:{port}"
    try:
        for p in pictures[:5]:
            http_search(base, p)
        out()
        out(f"## HTTP API (app.py with the {catalog_dir.name} index, embed mode {mode}; upload → call → event stream)")
        out()
        out(f"Cold start with cached artifacts (process start → HTTP 200, model + index loaded, warm-up query done): "
            f"**{ready:.1f} s**")
        out()
        out("| clients | seconds | requests | queries/s | p50 | p95 | errors |")
        out("|---|---|---|---|---|---|---|")
        for clients in (1, 8):
            r = load_run(base, pictures, clients, seconds)
            out(f"| {clients} | {seconds:.0f} | {r['n']} | {r['qps']:.1f} | {r['p50']:.1f} ms | {r['p95']:.1f} ms "
                f"| {len(r['errors'])} |")
            if r["errors"]:
                out(f"first error: {r['errors'][0]}")
        from gradio_client import Client, handle_file

        client = Client(base + "/", verbose=False, analytics_enabled=False, download_files=False)
        qfile = Path(tempfile.mkdtemp()) / "q.jpg"
        qfile.write_bytes(pictures[0])
        lat = []
        for _ in range(20):
            t = time.perf_counter()
            client.predict(handle_file(str(qfile)), api_name="/search_image")
            lat.append((time.perf_counter() - t) * 1000)
        out()
        out(f"gradio_client (download_files=False), 1 client, 20 calls: p50 {pct(lat, 50):.1f} ms, "
            f"p95 {pct(lat, 95):.1f} ms (includes the client's ~50 ms queue polling)")
        cur, peak = rss_mb(proc.pid)
        out()
        out(f"App memory serving {catalog_dir.name}: RSS {cur:.0f} MB now, peak {peak:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run (~2 min)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.md"), help="where to write the table")
    ap.add_argument("--skip-http", action="store_true", help="skip the HTTP API section")
    ap.add_argument("--index-only", action="store_true", help="only the index scaling section (50k, 200k, 1M)")
    args = ap.parse_args()

    from stylishi.config import set_threads

    threads = set_threads(2)
    import faiss
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    out(f"# StyliShi benchmark ({'quick' if args.quick else 'full'}) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
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
        model_dir = make_model(work)
        n_catalog = 5_000 if args.quick else 50_000
        catalog_dir = make_catalog(work, model_dir, n_catalog)
        modes = bench_modes(model_dir, catalog_dir, 40 if args.quick else 200)
        bench_fidelity(model_dir)
        bench_build(model_dir, work, 64 if args.quick else 256)
        if not args.skip_http:
            best = min(("fp32", "int8", "openvino"), key=lambda m: pct(modes[m]["total"], 50))
            bench_http(catalog_dir, 5 if args.quick else 20, best)
        bench_index([50_000] if args.quick else [50_000, 200_000, 1_000_000])
    finish(args, t_all)


def finish(args, t_all: float) -> None:
    _, peak = rss_mb()
    out()
    out(f"Benchmark process peak RSS {peak:.0f} MB; whole run {time.perf_counter() - t_all:.0f} s.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(LINES) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
