"""The vector-store seam: FAISS (default) and Milvus (Milvus Lite, embedded) give the same answers, filters stay exact
and cannot be injected, and Milvus faults are refused at start or said per query while serving, then recovered."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stylishi import milvus_store
from stylishi.errors import ArtifactError, QueryError
from stylishi.store import FaissStore, Selection, StoreUnavailableError
from tests.helpers import free_port

MILVUS = milvus_store.available() and importlib.util.find_spec("milvus_lite") is not None
needs_milvus = pytest.mark.skipif(not MILVUS, reason="pymilvus / milvus-lite not installed: the scale extra "
                                  "(pip install -r requirements-scale.txt; scripts/setup.sh --dev installs it)")
STORES = ["faiss", pytest.param("milvus", marks=needs_milvus)]
HOSTILE = 'Red" or colour != "'


@pytest.fixture(scope="module")
def catalog_data():
    """1,500 clustered unit vectors (like CLIP's) with metadata, including values that look like expression code."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, 1500)] + 0.35 * rng.normal(size=(1500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    colours = np.array(["Red", "Blue", HOSTILE, "Back\\slash", "it's \"quoted\""], dtype=object)
    meta = pd.DataFrame({"colour": colours[rng.integers(0, len(colours), 1500)],
                         "gender": np.array(["Men", "Women"], dtype=object)[rng.integers(0, 2, 1500)]})
    queries = vectors[rng.choice(1500, 12, replace=False)] + 0.05 * rng.normal(size=(12, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, meta, queries


@pytest.fixture(scope="module")
def stores(catalog_data, tmp_path_factory):
    vectors, meta, _ = catalog_data
    out = {"faiss": FaissStore.build(vectors, "Flat")}
    if MILVUS:
        uri = str(tmp_path_factory.mktemp("milvus") / "store.db")
        out["milvus"] = milvus_store.MilvusStore.build(uri, "synthetic", vectors, meta, model_id="synthetic-model",
                                                       filter_columns=["colour", "gender"])
    return out


def _selection(meta: pd.DataFrame, **wanted: tuple[str, ...]) -> Selection:
    mask = np.ones(len(meta), dtype=bool)
    for column, values in wanted.items():
        mask &= meta[column].isin(values).to_numpy()
    return Selection(values=wanted, rows=np.flatnonzero(mask).astype(np.int64))


def _exact(vectors, queries, k, rows=None):
    rows = np.arange(len(vectors)) if rows is None else rows
    scores = queries @ vectors[rows].T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rows[top]


@pytest.mark.parametrize("kind", STORES)
def test_exact_store_returns_the_brute_force_top_10(kind, stores, catalog_data):
    vectors, _, queries = catalog_data
    store = stores[kind]
    scores, rows = store.search(queries, 10)
    assert rows.shape == (12, 10) and len(store) == 1500 and store.dim == 32
    np.testing.assert_array_equal(rows, _exact(vectors, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, rows, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("wanted", [{"colour": ("Red",)}, {"colour": (HOSTILE,), "gender": ("Women",)},
                                    {"colour": ("Back\\slash", "it's \"quoted\"")}, {"gender": ("Men",)}])
def test_filtered_search_is_exact_and_values_cannot_change_the_expression(kind, wanted, stores, catalog_data):
    vectors, meta, queries = catalog_data
    selection = _selection(meta, **wanted)
    assert 0 < len(selection.rows) < 1500
    _, rows = stores[kind].search(queries, 10, selection)
    np.testing.assert_array_equal(rows, _exact(vectors, queries, 10, selection.rows))


@pytest.mark.parametrize("kind", STORES)
def test_stored_vectors_come_back_in_the_order_asked(kind, stores, catalog_data):
    vectors = catalog_data[0]
    rows = np.array([17, 3, 1499, 0])
    np.testing.assert_allclose(stores[kind].vectors(rows), vectors[rows], atol=1e-6)


@pytest.mark.parametrize("kind", STORES)
def test_empty_selection_gives_no_results(kind, stores, catalog_data):
    scores, rows = stores[kind].search(catalog_data[2][:2], 5, Selection({"colour": ("Red",)}, np.array([], np.int64)))
    assert (rows == -1).all() and np.isneginf(scores).all()


def test_filter_expression_is_built_from_escaped_literals_and_known_fields_only():
    expr = milvus_store.filter_expression({"colour": [HOSTILE, "a\\b"], "gender": ["Women"]}, ["colour", "gender"])
    assert expr == 'colour in ["Red\\" or colour != \\"", "a\\\\b"] and gender in ["Women"]'
    with pytest.raises(Exception, match="no filter field"):
        milvus_store.filter_expression({"colour or 1==1": ["x"]}, ["colour"])
    with pytest.raises(Exception, match="control character"):
        milvus_store.string_literal("bad\x00value")


def test_public_uri_drops_credentials():
    assert milvus_store.public_uri("https://user:secret@milvus.example:19530/?token=abc") == \
        "https://milvus.example:19530/"
    assert milvus_store.public_uri("data/demo.db") == "data/demo.db"


# -- the service and the artifact, served from Milvus --------------------------------------------------------------
def _with_milvus(demo_index: Path, dest: Path, uri: str, *, collection: str = "demo") -> Path:
    """A copy of the demo artifact whose manifest names a Milvus collection holding its vectors."""
    from stylishi import catalog as catalog_mod

    shutil.copytree(demo_index, dest, ignore=shutil.ignore_patterns("*.db"))
    cat = catalog_mod.load(dest)
    vectors = cat.store.vectors(np.arange(len(cat)))
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["store"] = catalog_mod._write_milvus(dest, {"uri": uri, "collection": collection}, vectors, cat.items,
                                                  manifest["model"]["id"])
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


@pytest.fixture(scope="module")
def milvus_index(demo_index, tmp_path_factory):
    if not MILVUS:
        pytest.skip("pymilvus / milvus-lite not installed (requirements-scale.txt)")
    dest = tmp_path_factory.mktemp("milvus_index") / "index"
    return _with_milvus(demo_index, dest, str(dest / "demo.db"))


@needs_milvus
def test_service_from_milvus_answers_like_faiss(service, milvus_index):
    import stylishi

    on_milvus = stylishi.load(milvus_index)
    assert on_milvus.catalog.store.kind == "milvus" and on_milvus.catalog.index is None
    manifest = json.loads((milvus_index / "manifest.json").read_text())
    assert manifest["store"]["uri"] == "./demo.db" and manifest["store"]["count"] == len(service.catalog)
    ids = lambda r: [x.id for x in r.results]  # noqa: E731
    for text in ("a red dress", "blue jeans", "white sneakers"):
        assert ids(on_milvus.search_text(text, k=10)) == ids(service.search_text(text, k=10))
    some_id = service.catalog.items["id"].iloc[5]
    assert ids(on_milvus.search_item(some_id, k=10)) == ids(service.search_item(some_id, k=10))
    colour = service.filter_values["colour"][0]
    filters = {"colour": colour.lower(), "gender": service.filter_values["gender"]}
    a, b = on_milvus.search_text("a shirt", k=10, filters=filters), service.search_text("a shirt", k=10, filters=filters)
    assert ids(a) == ids(b) and all(r.colour == colour for r in a.results)
    with pytest.raises(QueryError):  # a value the catalog lacks never reaches the store
        on_milvus.search_text("a shirt", filters={"colour": HOSTILE})


@needs_milvus
def test_milvus_collection_missing_or_not_matching_is_refused_at_start(milvus_index, tmp_path, catalog_data):
    from stylishi import catalog as catalog_mod

    manifest = json.loads((milvus_index / "manifest.json").read_text())
    uri = str(milvus_index / "demo.db")
    with pytest.raises(ArtifactError, match="'nope' .* does not exist.*--milvus-collection"):
        milvus_store.MilvusStore.open(uri, "nope", model_id=manifest["model"]["id"], dim=64, count=manifest["count"])
    vectors, meta, _ = catalog_data
    milvus_store.MilvusStore.build(uri, "other", vectors[:manifest["count"]], meta.iloc[:manifest["count"]],
                                   model_id=manifest["model"]["id"], filter_columns=["colour"]).close()
    with pytest.raises(ArtifactError, match="32-d vectors but the index manifest says 64-d"):
        milvus_store.MilvusStore.open(uri, "other", model_id=manifest["model"]["id"], dim=64, count=manifest["count"])
    store = milvus_store.MilvusStore.open(uri, "demo", model_id=manifest["model"]["id"], dim=64, count=manifest["count"])
    with pytest.raises(ArtifactError, match="built with the model .* not 'another/model'"):
        store.check(model_id="another/model", dim=64, count=manifest["count"])
    with pytest.raises(ArtifactError, match=f"holds {manifest['count']} items but the index manifest says 7"):
        store.check(model_id=manifest["model"]["id"], dim=64, count=7)
    # Through the artifact: a manifest naming a missing collection is refused with the fix.
    broken = tmp_path / "broken"
    shutil.copytree(milvus_index, broken, ignore=shutil.ignore_patterns("*.db"))
    manifest["store"]["collection"] = "gone"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not exist"):
        catalog_mod.load(broken, milvus_uri=uri)


@needs_milvus
def test_unreachable_milvus_at_start_names_the_uri(milvus_index):
    from stylishi import catalog as catalog_mod

    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(StoreUnavailableError, match=f"{uri}.*cannot be reached.*--milvus-uri"):
        catalog_mod.load(milvus_index, milvus_uri=uri)
    assert time.perf_counter() - t0 < 30


def _start_lite_server(data_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError("the Milvus Lite server did not start")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the Milvus Lite server did not listen in time")


@needs_milvus
@pytest.mark.slow
def test_milvus_going_away_while_serving_is_said_per_query_then_recovers(demo_index, tmp_path):
    """A Milvus server process (Lite, as a standalone server) is stopped and restarted under a running service."""
    import stylishi

    port, data = free_port(), tmp_path / "server.db"
    uri = f"http://127.0.0.1:{port}"
    server = _start_lite_server(data, port)
    try:
        index = _with_milvus(demo_index, tmp_path / "index", uri)
        assert json.loads((index / "manifest.json").read_text())["store"]["uri"] == uri
        service = stylishi.load(index)
        before = [r.id for r in service.search_text("a red dress", k=5).results]
        server.terminate()
        server.wait(timeout=30)
        for _ in range(2):  # each query: a clear message naming the address; the service stays usable
            with pytest.raises(StoreUnavailableError, match=f"{uri}.*cannot be reached.*back"):
                service.search_text("a red dress", k=5)
        server = _start_lite_server(data, port)
        deadline = time.monotonic() + 60
        while True:
            try:
                again = [r.id for r in service.search_text("a red dress", k=5).results]
                break
            except StoreUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert again == before
    finally:
        server.kill()
        server.wait(timeout=30)



@needs_milvus
@pytest.mark.slow
def test_the_command_line_demo_build_into_milvus_lite_is_served_by_the_app(demo_index, tmp_path):
    """The issue's path end to end: `build_index.py --demo --out DIR --milvus DIR/demo.db`, then
    `app.py --index DIR` answers over HTTP from Milvus Lite with the FAISS demo's results."""
    import httpx

    import stylishi
    from tests.helpers import ROOT, http_call, running_app

    faiss_demo = stylishi.load(demo_index, mode="fp32", device="cpu")  # the app below runs fp32 too

    out = tmp_path / "demo-milvus"
    build = subprocess.run([sys.executable, str(ROOT / "build_index.py"), "--demo", "--out", str(out),
                            "--milvus", str(out / "demo.db")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["store"]["kind"] == "milvus" and manifest["store"]["uri"] == "./demo.db"
    with running_app(out, tmp_path / "app", env={"STYLISHI_RATE_LIMIT": "0"}, timeout=300) as app:
        with httpx.Client(base_url=app.url, timeout=120) as http:
            for api, query in (("search_text", "red dress"), ("more_like_this", "demo-0001")):
                kind, outputs = http_call(http, api, [query, 5, {"colour": "Red"} if api == "search_text" else None])
                assert kind == "complete", outputs
                want = (faiss_demo.search_text(query, 5, {"colour": "Red"}) if api == "search_text"
                        else faiss_demo.search_item(query, 5))
                assert [r["id"] for r in outputs[1]] == [r.id for r in want.results]
    assert "Traceback" not in app.log_text()
