"""From the Hub: pull, pin, start from the cache, starter index, offline demo, checksums and push.

Every scenario runs the real huggingface_hub / datasets / transformers in a subprocess whose HF_ENDPOINT points at
the Hub stand-in (tests/hub_server.py): nothing here mocks a download function. The stand-in serves, built once per
module: a tiny random CLIP (as owner/tiny-clip, and as the default model id), a tiny fashion dataset shaped like
ashraq/fashion-product-images-small (as owner/tiny-fashion, and as the default dataset id), and indexes built
with that CLIP whose manifests name owner/tiny-clip at its commit.

A client may stop at `pause(name)` and wait while the test acts (stops the stand-in, moves a repo on, repairs a
file); it then calls huggingface_hub's close_session(), as a new start would have no pooled connection.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stylishi import builder
from stylishi.config import DEFAULT_DATASET, DEFAULT_INDEX_REPO, DEFAULT_MODEL, Settings
from stylishi.demo import garment_picture, save_tiny_clip
from stylishi.embedder import Embedder

from tests.hub_server import HubStandIn

ROOT = Path(__file__).resolve().parents[1]
DATASET_README = """---
license: mit
dataset_info:
  features:
  - name: id
    dtype: int64
  - name: gender
    dtype: string
  - name: masterCategory
    dtype: string
  - name: subCategory
    dtype: string
  - name: articleType
    dtype: string
  - name: baseColour
    dtype: string
  - name: season
    dtype: string
  - name: year
    dtype: float64
  - name: usage
    dtype: string
  - name: productDisplayName
    dtype: string
  - name: image
    dtype: image
  splits:
  - name: train
    num_examples: 12
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# Tiny fashion products (test stand-in)
"""
PRODUCTS = [  # id, gender, master, sub, article type (demo garment), colour, pattern
    (15970, "Men", "Apparel", "Topwear", "Tshirts", "Navy Blue", "Striped"),
    (39386, "Women", "Apparel", "Dress", "Dresses", "Red", "Solid"),
    (59263, "Women", "Accessories", "Bags", "Handbags", "Brown", "Solid"),
    (21379, "Men", "Apparel", "Bottomwear", "Trousers", "Black", "Solid"),
    (53759, "Unisex", "Footwear", "Shoes", "Casual Shoes", "Beige", "Checked"),
    (1855, "Men", "Accessories", "Headwear", "Caps", "Green", "Solid"),
    (30805, "Women", "Apparel", "Bottomwear", "Skirts", "Pink", "Polka Dot"),
    (26960, "Men", "Apparel", "Topwear", "Jackets", "Grey", "Checked"),
    (29114, "Women", "Apparel", "Topwear", "Tshirts", "Yellow", "Solid"),
    (30039, "Men", "Footwear", "Shoes", "Casual Shoes", "Blue", "Striped"),
    (9204, "Women", "Apparel", "Dress", "Dresses", "Purple", "Polka Dot"),
    (48123, "Unisex", "Accessories", "Headwear", "Caps", "Orange", "Striped"),
]


# -- the world the stand-in serves --------------------------------------------------------------------------------
def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _dataset_rows() -> list[dict]:
    rows = []
    for n, (pid, gender, master, sub, article, colour, pattern) in enumerate(PRODUCTS):
        rows.append({"id": pid, "gender": gender, "masterCategory": master, "subCategory": sub,
                     "articleType": article, "baseColour": colour, "season": "Summer", "year": 2012.0,
                     "usage": "Casual", "productDisplayName": f"{colour} {pattern.lower()} {article.lower()}",
                     "image": {"bytes": _png(garment_picture(article, colour, pattern, seed=n, size=80)),
                               "path": f"{pid}.png"}})
    return rows


def _parquet(rows: list[dict]) -> bytes:
    schema = pa.schema([("id", pa.int64()), ("gender", pa.string()), ("masterCategory", pa.string()),
                        ("subCategory", pa.string()), ("articleType", pa.string()), ("baseColour", pa.string()),
                        ("season", pa.string()), ("year", pa.float64()), ("usage", pa.string()),
                        ("productDisplayName", pa.string()),
                        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))])
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, row_group_size=4)
    return buf.getvalue()


class World:
    """The stand-in and what it serves, plus helpers to run clients against it."""

    def __init__(self, hub: HubStandIn, root: Path):
        self.hub = hub
        self.root = root

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "HUGGINGFACE_", "STYLISHI_", "TRANSFORMERS_"))}
        env.update(HF_ENDPOINT=self.hub.url, HF_HOME=str(home / "hf"), STYLISHI_CACHE=str(home / "stylishi"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                   HF_DATASETS_DISABLE_PROGRESS_BARS="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false",
                   NO_PROXY="*", no_proxy="*", PYTHONPATH=str(ROOT), STYLISHI_THREADS="1")
        env.update(extra)
        return env

    def run(self, home: Path, code: str, *, pauses: dict | None = None, timeout: float = 150, prelude: str = "",
            **extra_env: str):
        """Run `code` (after PRELUDE and `prelude`) in a fresh interpreter; return the merged emit(...) dicts."""
        return run_client(self.env(home, **extra_env), home, prelude + textwrap.dedent(code), pauses=pauses,
                          timeout=timeout)


PRELUDE = """
import json, logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
def emit(**kw):
    print("@@" + json.dumps(kw), flush=True)
def pause(name):
    emit(pause=name)
    sys.stdin.readline()
    from huggingface_hub.utils import close_session
    close_session()  # a new start would have no pooled connection to the old server
"""


def run_client(env: dict, home: Path, code: str, *, pauses: dict | None = None, timeout: float = 150) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"client-{time.time_ns()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", PRELUDE + code], env=env, cwd=home,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        out: dict = {}
        try:
            for line in proc.stdout:
                if not line.startswith("@@"):
                    continue
                msg = json.loads(line[2:])
                if "pause" in msg:
                    (pauses or {})[msg["pause"]]()
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                else:
                    out.update(msg)
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, f"client failed ({proc.returncode}):\n{log_path.read_text()[-6000:]}"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub_world")
    clip = save_tiny_clip(root / "tiny-clip")
    rows = _dataset_rows()
    (root / "pictures").mkdir()
    for row in rows:
        (root / "pictures" / f"{row['id']}.png").write_bytes(row["image"]["bytes"])
    dataset_files = {"README.md": DATASET_README.encode(), "data/train-00000-of-00001.parquet": _parquet(rows)}
    with HubStandIn() as hub:
        w = World(hub, root)
        w.model_sha = hub.add_repo("owner/tiny-clip", folder=clip)
        hub.add_repo(DEFAULT_MODEL, folder=clip)  # the default model id, served as the tiny CLIP
        hub.add_repo("owner/bin-only", files={"config.json": (clip / "config.json").read_bytes(),
                                              "pytorch_model.bin": b"\x80\x02pickled"})
        w.dataset_sha = hub.add_repo("owner/tiny-fashion", "dataset", files=dataset_files)
        hub.add_repo(DEFAULT_DATASET, "dataset", files=dataset_files)  # the default source dataset id
        # Two indexes built with the tiny CLIP, recorded as the Hub model owner/tiny-clip at its commit.
        embedder = Embedder.load(clip, model_id="owner/tiny-clip", revision=w.model_sha, device="cpu", mode="fp32")
        records = [builder.Record(id=str(r["id"]), image=r["image"]["bytes"],
                                  metadata={"name": r["productDisplayName"], "category": r["masterCategory"],
                                            "article_type": r["articleType"], "colour": r["baseColour"]})
                   for r in rows]
        for name, n in (("v1", 8), ("v2", 5)):
            report = builder.build(records[:n], embedder, root / name, progress=False,
                                   source={"kind": "hub-dataset", "id": "owner/tiny-fashion", "licence": "mit"})
            assert report.validation_passed == report.validated == n
        w.v1, w.v2 = root / "v1", root / "v2"
        w.idx_sha = hub.add_repo("owner/idx", "dataset", folder=w.v1)
        w.rows = rows
        yield w


# -- pull → verify → load → search; model from the manifest; refusals -------------------------------------------
FAKE_SPACES = """
import pickle, sys, types
calls = []
def GPU(task=None, *, duration=None, size=None):
    def wrap(fn):
        def run(*args, **kwargs):
            calls.append(fn.__name__)
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # what ZeroGPU sends to its worker
            return fn(*args, **kwargs)
        return run
    return wrap(task) if callable(task) else wrap
sys.modules["spaces"] = types.SimpleNamespace(GPU=GPU, calls=calls)
"""


@pytest.mark.slow
def test_pull_verify_load_search_with_the_model_the_manifest_names(world, tmp_path):
    world.hub.clear_requests()
    query = world.root / "pictures" / f"{world.rows[1]['id']}.png"
    out = world.run(tmp_path, prelude=FAKE_SPACES, code=f"""
        from stylishi.errors import ModelError
        from stylishi.hub import resolve_model
        from stylishi.startup import ModelMismatchError, open_service
        t0 = time.perf_counter()
        s = open_service("owner/idx")
        seconds = time.perf_counter() - t0
        hits = s.search_image({str(query)!r}, k=3).results
        emit(notice=s.notice, source=s.source, count=len(s.catalog), root=str(s.catalog.root), seconds=seconds,
             top=hits[0].id, model=s.embedder.model_id, revision=s.embedder.revision,
             gpu_calls=list(sys.modules["spaces"].calls))
        try:
            open_service("owner/idx", model="owner/other-clip")
        except ModelMismatchError as exc:
            emit(mismatch=str(exc))
        try:
            resolve_model("owner/bin-only")
        except ModelError as exc:
            emit(bin_only=str(exc))
    """)
    assert out["notice"] is None
    assert out["source"] == f"owner/idx@{world.idx_sha}"
    assert out["root"].endswith(f"datasets--owner--idx/snapshots/{world.idx_sha}")
    assert out["count"] == 8 and out["top"] == str(world.rows[1]["id"])
    assert (out["model"], out["revision"]) == ("owner/tiny-clip", world.model_sha)  # as the manifest says
    assert "embed_pixels" in " ".join(out["gpu_calls"])  # the ZeroGPU hook wraps the embedding
    requests = world.hub.requests
    assert ("GET", "/api/datasets/owner/idx/revision/main") in requests
    assert ("GET", f"/owner/tiny-clip/resolve/{world.model_sha}/model.safetensors") in requests
    assert not any(p.endswith(".bin") for _, p in requests)
    assert "owner/tiny-clip" in out["mismatch"] and "owner/other-clip" in out["mismatch"]
    assert "pytorch_model.bin" in out["bin_only"] and "safetensors" in out["bin_only"]


@pytest.mark.slow
def test_a_pinned_revision_is_served_after_the_repo_moves_on(world, tmp_path):
    first = world.hub.add_repo("owner/idx-moving", "dataset", folder=world.v1)
    moved = {}
    out = world.run(tmp_path, f"""
        from stylishi.startup import open_service
        a = open_service("owner/idx-moving@{first}")
        emit(a=[a.source, len(a.catalog)])
        pause("move-on")
        b = open_service("owner/idx-moving")
        c = open_service("owner/idx-moving@{first}")
        emit(b=[b.source, len(b.catalog), b.notice], c=[c.source, len(c.catalog), c.notice])
    """, pauses={"move-on": lambda: moved.setdefault("sha", world.hub.add_repo("owner/idx-moving", "dataset",
                                                                                folder=world.v2))})
    assert out["a"] == [f"owner/idx-moving@{first}", 8]
    assert out["b"] == [f"owner/idx-moving@{moved['sha']}", 5, None]  # main moved on
    assert out["c"] == [f"owner/idx-moving@{first}", 8, None]  # the pin did not


# -- the Hub away: warm cache, time-outs, offline mode ----------------------------------------------------------
@pytest.mark.slow
def test_warm_cache_starts_at_once_when_the_hub_is_away_or_offline(world, tmp_path):
    hub = world.hub
    blackhole: list[socket.socket] = []

    def stop_and_hang():  # the stand-in gone; its port accepts connections and never answers
        hub.stop()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(hub.url.rsplit(":", 1)[1])))
        s.listen(64)
        blackhole.append(s)

    def refuse():  # nothing listens any more: connection refused
        blackhole.pop().close()

    query = world.root / "pictures" / f"{world.rows[2]['id']}.png"
    try:
        out = world.run(tmp_path, f"""
            from stylishi.startup import open_service
            open_service("owner/idx")  # warm the cache (and import everything, so timings are the start-up's own)
            pause("hang")
            t0 = time.perf_counter()
            s = open_service("owner/idx")
            hang_s = time.perf_counter() - t0
            pause("refuse")
            t0 = time.perf_counter()
            r = open_service("owner/idx")
            emit(hang=[s.notice, hang_s], refused=[r.notice, time.perf_counter() - t0, r.source],
                 top=r.search_image({str(query)!r}, k=1).results[0].id)
        """, pauses={"hang": stop_and_hang, "refuse": refuse}, STYLISHI_HUB_TIMEOUT="1")
    finally:
        for s in blackhole:
            s.close()
        hub.start()
    sha = world.idx_sha
    notice, seconds = out["hang"]
    assert f"cached revision {sha[:12]}" in notice and "did not answer within 1 s" in notice
    assert seconds < 1 + 4  # the probe's 1 s, then straight from the cache (no ~20 s of retries)
    notice, seconds, source = out["refused"]
    assert f"cached revision {sha[:12]}" in notice and "could not be reached" in notice
    assert seconds < 4 and source == f"owner/idx@{sha}"
    assert out["top"] == str(world.rows[2]["id"])

    hub.clear_requests()
    out = world.run(tmp_path, """
        from transformers import CLIPModel, CLIPProcessor  # imported first: time the start-up, not the imports
        from stylishi.startup import open_service
        t0 = time.perf_counter()
        s = open_service("owner/idx")
        emit(notice=s.notice, seconds=time.perf_counter() - t0, count=len(s.catalog),
             model=[s.embedder.model_id, s.embedder.revision])
    """, HF_HUB_OFFLINE="1")
    assert hub.requests == []  # offline mode: not one request
    assert f"cached revision {sha[:12]}" in out["notice"] and "HF_HUB_OFFLINE=1" in out["notice"]
    assert out["seconds"] < 4 and out["count"] == 8 and out["model"] == ["owner/tiny-clip", world.model_sha]


# -- no index: starter index; nothing reachable: the offline demo or one clear error ----------------------------
@pytest.mark.slow
def test_missing_index_repo_builds_a_starter_index_from_the_dataset(world, tmp_path):
    hub = world.hub
    ds_sha = hub.head_sha(DEFAULT_DATASET, "dataset")
    query = world.root / "pictures" / f"{world.rows[3]['id']}.png"
    try:
        out = world.run(tmp_path, f"""
            from stylishi.startup import open_service
            steps = []
            s = open_service(progress=lambda message, fraction: steps.append([message, fraction]))
            t0 = time.perf_counter()
            again = open_service()
            emit(notice=s.notice, count=len(s.catalog), root=str(s.catalog.root), source=s.source,
                 model=s.embedder.model_id, top=s.search_image({str(query)!r}, k=1).results[0].id, steps=steps,
                 again=[str(again.catalog.root), again.catalog.manifest["built_at"] == s.catalog.manifest["built_at"],
                        time.perf_counter() - t0])
            pause("stop")
            away = open_service()
            emit(away=[away.notice, str(away.catalog.root), len(away.catalog)])
        """, pauses={"stop": hub.stop}, STYLISHI_STARTER_ITEMS="6")
    finally:
        hub.start()
    starter = tmp_path / "stylishi" / "starter" / f"{DEFAULT_DATASET}@{ds_sha}"
    assert out["notice"].startswith(f"Starter index of the first 6 items of {DEFAULT_DATASET}")
    assert DEFAULT_INDEX_REPO in out["notice"] and "--push-to" in out["notice"]
    assert out["count"] == 6 and out["root"] == str(starter) and out["model"] == DEFAULT_MODEL
    assert out["top"] == str(world.rows[3]["id"])
    assert any("Building a starter index" in m for m, _ in out["steps"])
    fractions = [f for _, f in out["steps"] if f is not None]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert out["again"][0] == str(starter) and out["again"][1]  # cached: not built again
    notice, root, count = out["away"]
    assert root == str(starter) and count == 6 and "built on an earlier start" in notice
    manifest = json.loads((starter / "manifest.json").read_text())
    assert manifest["source"]["licence"] == "mit" and manifest["source"]["revision"] == ds_sha


@pytest.mark.slow
def test_nothing_reachable_serves_the_offline_demo_or_stops_with_one_clear_message(world, tmp_path):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = world.run(tmp_path, """
        import os
        from stylishi.errors import StyliShiError
        from stylishi.startup import open_service
        try:
            open_service(fallback=False)
        except StyliShiError as exc:
            emit(error=str(exc))
        try:
            open_service("owner/not-here")  # named: no fallback, so no starter index or demo either
        except StyliShiError as exc:
            emit(named_error=str(exc), demo_after_named=os.path.exists(os.environ["STYLISHI_CACHE"] + "/demo"))
        t0 = time.perf_counter()
        s = open_service()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = open_service()
        emit(notice=s.notice, details=s.startup.details(), source=s.source, count=len(s.catalog), first=first,
             again=time.perf_counter() - t0, same=again.catalog.manifest["built_at"] == s.catalog.manifest["built_at"],
             top=again.search_text("red dress", k=1).results[0].id is not None)
        os.environ["STYLISHI_NO_FALLBACK"] = "1"
        try:
            open_service()
        except StyliShiError as exc:
            emit(env_error=str(exc))
    """, HF_ENDPOINT=dead)
    error = out["error"]  # fallback off: no starter index either, so only the index was tried
    for part in (DEFAULT_INDEX_REPO, "could not be reached", "no revision of it is cached", "STYLISHI_NO_FALLBACK",
                 "build_index.py", "HF_HUB_OFFLINE"):
        assert part in error, part
    assert out["env_error"] == error
    named = out["named_error"]  # issue 15.2: a named index that cannot be had is an error, never the demo
    assert named.startswith("Could not open the catalog index owner/not-here.") and "could not be reached" in named
    assert "starter index from the dataset" not in named and "--fallback demo" in named
    assert not out["demo_after_named"]
    # One short line on the page; the reasons, one per source tried, for its <details>.
    assert out["notice"] == f"Offline demo: the catalog index {DEFAULT_INDEX_REPO} could not be loaded."
    hub, cache, starter = out["details"]
    assert hub.startswith(f"The Hub dataset repo {DEFAULT_INDEX_REPO}: ") and "could not be reached" in hub
    assert "--index OWNER/NAME" in hub  # how to point the app at a real index
    assert cache.startswith(f"The cached copy of {DEFAULT_INDEX_REPO}: no revision of it is cached here")
    assert starter.startswith(f"A starter index from the dataset {DEFAULT_DATASET}: ") and "could not be reached" in starter
    assert out["source"] == "demo" and out["count"] == 1200 and out["top"]
    assert out["same"] and out["again"] < out["first"] / 3  # built once, then loaded from the cache
    assert (tmp_path / "stylishi" / "demo" / "manifest.json").is_file()
    assert not (tmp_path / "stylishi" / "demo" / "catalog_images").exists()


# -- damaged downloads --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_corrupted_download_is_refused_by_checksum_and_fetched_again(world, tmp_path):
    hub = world.hub
    sha = hub.add_repo("owner/idx-corrupt", "dataset", folder=world.v1)
    hub.corrupt("owner/idx-corrupt", "dataset", "index.faiss")  # other bytes, same size and advertised etag
    out = world.run(tmp_path, """
        from stylishi.errors import StyliShiError
        from stylishi.startup import open_service
        try:
            open_service("owner/idx-corrupt", fallback=False)
        except StyliShiError as exc:
            emit(error=str(exc))
        pause("repair")
        s = open_service("owner/idx-corrupt", fallback=False)
        emit(count=len(s.catalog), notice=s.notice)
    """, pauses={"repair": lambda: hub.uncorrupt("owner/idx-corrupt", "dataset", "index.faiss")})
    assert "index.faiss is corrupted" in out["error"] and "sha256" in out["error"]
    assert "removed from the cache" in out["error"] and sha[:12] in out["error"]
    assert out["count"] == 8 and out["notice"] is None  # downloaded again, verified, served


# -- push ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_build_index_push_to_end_to_end_then_pull_back_and_search(world, tmp_path):
    env = world.env(tmp_path, HF_TOKEN="hf_test_token")
    out_dir = tmp_path / "built"
    done = subprocess.run([sys.executable, str(ROOT / "build_index.py"), "--dataset", "owner/tiny-fashion",
                           "--model", "owner/tiny-clip", "--limit", "5", "--out", str(out_dir),
                           "--push-to", "owner/idx-pushed", "--no-progress"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pushed to" in done.stdout and "python app.py --index owner/idx-pushed" in done.stdout
    files = world.hub.files_at("owner/idx-pushed", "dataset")
    assert set(files) == {"README.md", "manifest.json", "index.faiss", "items.parquet", "thumbnails.parquet"}
    manifest = json.loads(files["manifest.json"])
    assert manifest["count"] == 5 and manifest["model"] == {**manifest["model"], "id": "owner/tiny-clip",
                                                             "revision": world.model_sha}
    assert manifest["source"]["revision"] == world.dataset_sha and manifest["source"]["licence"] == "mit"
    card = files["README.md"].decode()
    assert card.startswith("---\nlicense: mit\n")
    for part in ("5 products", "owner/tiny-clip", "owner/tiny-fashion", "source licence | mit", "How it was built",
                 "--dataset owner/tiny-fashion --model owner/tiny-clip --limit 5", "python app.py --index owner/idx-pushed"):
        assert part in card, part

    # The offline demo pushed with its bundled model (./model) but not its generated source pictures.
    query = world.root / "pictures" / f"{world.rows[4]['id']}.png"
    out = world.run(tmp_path, f"""
        from stylishi.builder import build_demo
        from stylishi.hub import push_index
        from stylishi.startup import open_service
        build_demo("demo_small", limit=24, progress=False)
        url = push_index("demo_small", "owner/demo-pushed")
        pushed = open_service("owner/idx-pushed", fallback=False)
        demo = open_service("owner/demo-pushed", fallback=False)
        emit(url=url, pushed=[pushed.source, len(pushed.catalog),
                              pushed.search_image({str(query)!r}, k=1).results[0].id],
             demo=[len(demo.catalog), demo.search_image("demo_small/catalog_images/demo-0007.png", k=1).results[0].id,
                   str(demo.embedder.model_id)])
    """, HF_TOKEN="hf_test_token")
    assert out["pushed"] == [f"owner/idx-pushed@{world.hub.head_sha('owner/idx-pushed', 'dataset')}", 5,
                             str(world.rows[4]["id"])]
    assert out["demo"][:2] == [24, "demo-0007"] and out["demo"][2] == "./model"
    demo_files = world.hub.files_at("owner/demo-pushed", "dataset")
    assert "model/model.safetensors" in demo_files and "model/config.json" in demo_files
    assert not any(p.startswith("catalog_images/") for p in demo_files)
    assert "bundled in this repo" in demo_files["README.md"].decode()


def test_push_without_a_token_stops_before_building_and_says_how_to_get_one(world, tmp_path):
    env = world.env(tmp_path)  # HF_HOME is empty: no saved login either
    done = subprocess.run([sys.executable, str(ROOT / "build_index.py"), "--demo", "--out", str(tmp_path / "o"),
                           "--push-to", "owner/anything"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "HF_TOKEN" in done.stderr and "hf auth login" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


# -- in process ---------------------------------------------------------------------------------------------------
def test_gpu_method_is_the_plain_method_without_spaces_and_spaces_gpu_with_it(monkeypatch):
    from stylishi import gpu

    class Thing:
        def __init__(self):
            self.big = object()  # stands for a model: it must never be pickled into the call

        def twice(self, x, *, plus=0):
            return 2 * x + plus

    plain = Thing.twice
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces → ImportError
    assert gpu.spaces_module() is None and gpu.gpu_method(plain) is plain

    seen = []

    def GPU(task=None, *, duration=None, size=None):
        def wrap(fn):
            def run(*args, **kwargs):
                import pickle

                seen.append((fn.__name__, duration, args))
                return fn(*pickle.loads(pickle.dumps(args)), **kwargs)
            return run
        return wrap(task) if callable(task) else wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    wrapped = gpu.gpu_method(plain)
    thing = Thing()
    assert wrapped(thing, 3, plus=1) == 7
    (name, duration, args), = seen
    assert name.endswith("_on_gpu") and duration == gpu.GPU_DURATION and args[1:] == ((3,), {"plus": 1})
    assert isinstance(args[0], int)  # a key, not the instance


def test_settings_for_the_start_up_policy(monkeypatch):
    for name in ("STYLISHI_DATASET", "STYLISHI_STARTER_ITEMS", "STYLISHI_NO_FALLBACK", "STYLISHI_FALLBACK",
                 "STYLISHI_HUB_TIMEOUT", "STYLISHI_INDEX"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert (s.dataset, s.starter_items, s.fallback, s.hub_timeout) == (DEFAULT_DATASET, 2000, "auto", 5.0)
    assert s.fallback_for_index() == "demo"  # the default index falls back
    assert Settings.from_env(index="owner/idx").fallback_for_index() == "none"  # a named one does not
    monkeypatch.setenv("STYLISHI_STARTER_ITEMS", "500")
    monkeypatch.setenv("STYLISHI_NO_FALLBACK", "1")
    monkeypatch.setenv("STYLISHI_HUB_TIMEOUT", "0.5")
    monkeypatch.setenv("STYLISHI_DATASET", "me/shop@v2")
    s = Settings()
    assert (s.dataset, s.starter_items, s.fallback, s.hub_timeout) == ("me/shop@v2", 500, "none", 0.5)
    monkeypatch.setenv("STYLISHI_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="STYLISHI_HUB_TIMEOUT"):
        Settings()


def test_refs_and_the_local_demo_need_no_network(tmp_path, demo_index, monkeypatch):
    from stylishi import hub
    from stylishi.startup import ModelMismatchError, open_service

    assert hub.split_ref("owner/idx@v1") == ("owner/idx", "v1") and hub.split_ref("owner/idx") == ("owner/idx", None)
    assert not hub.is_local_ref("owner/idx") and not hub.is_local_ref("owner/idx@refs/pr/1")
    assert hub.is_local_ref("./idx") and hub.is_local_ref("/tmp/idx") and hub.is_local_ref("demo_index")
    assert hub.is_local_ref("a/b/c")
    local = shutil.copytree(demo_index, tmp_path / "idx", ignore=shutil.ignore_patterns("catalog_images"))
    service = open_service(str(local))
    assert service.notice is None and service.source == str(local) and len(service.catalog) == 1200
    with pytest.raises(ModelMismatchError, match="owner/other"):
        open_service(str(local), model="owner/other", fallback=True)
    assert hub.upload_patterns(local, service.catalog.manifest)[-1] == "model/*"
