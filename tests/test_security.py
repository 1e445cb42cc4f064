"""Security: no pickle loaded anywhere; files served only from the index's thumbnail folder, the example pictures and
Gradio's upload cache (no path traversal, no server-side fetches); uploads limited server-side; no user picture written
anywhere but the upload cache, which is emptied; dependencies pinned.

One app server for the module, started with HOME, TMPDIR, HF_HOME, STYLISHI_CACHE and GRADIO_TEMP_DIR all in a fresh
folder, so that everything it writes can be searched afterwards.
"""
from __future__ import annotations

import ast
import base64
import hashlib
from http.client import HTTPConnection
import io
import json
import os
import re
import secrets
import threading
import time
import tokenize
import urllib.parse
from pathlib import Path

import httpx
import pytest
from PIL import Image, PngImagePlugin

from tests.helpers import http_call
from tests.helpers import file_data, files_in, running_app, upload_bytes, wait_until

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "app.py", ROOT / "build_index.py", *sorted((ROOT / "stylishi").glob("*.py")),
           *sorted((ROOT / "bench").glob("*.py")), *sorted((ROOT / "data").glob("*.py"))]


# -- no pickle ------------------------------------------------------------------------------------------------------
def _code_only(path: Path) -> str:
    """The source without comments and string literals (messages may name what we refuse to do)."""
    keep = []
    with open(path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.ENCODING):
                keep.append(tok.string)
    return " ".join(keep)


PICKLE_USES = re.compile(r"\b(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b|"
                         r"torch \. load\b|read_pickle|allow_pickle = True|weights_only = False|"
                         r"use_safetensors = False|trust_remote_code = True")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_is_loaded_anywhere(path):
    code = _code_only(path)
    assert not PICKLE_USES.search(code), PICKLE_USES.search(code).group(0)
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name.endswith("Model.from_pretrained"):  # weights: safetensors only
            assert keywords.get("use_safetensors") == "True", f"{path.name}: {ast.unparse(node)}"
        if name in ("np.load", "numpy.load"):
            assert keywords.get("allow_pickle") in (None, "False"), f"{path.name}: {ast.unparse(node)}"


def test_the_embedder_loads_safetensors_only_and_the_demo_model_has_no_pickle(demo_index):
    source = (ROOT / "stylishi" / "embedder.py").read_text()
    assert "CLIPModel.from_pretrained(str(model_path), revision=revision, use_safetensors=True)" in source
    names = {p.name for p in (demo_index / "model").iterdir()}
    assert "model.safetensors" in names and not {n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))}


# -- dependencies ---------------------------------------------------------------------------------------------------
PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*")


def test_every_dependency_is_pinned():
    files = sorted(ROOT.glob("requirements*.txt"))
    assert {f.name for f in files} >= {"requirements.txt", "requirements-dev.txt"}
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                assert PIN.fullmatch(line), f"{f.name}:{n}: {line!r} is not name==version"


# -- the server -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def server(demo_index, sandbox):
    env = {name: str(sandbox / name.lower()) for name in ("HOME", "TMPDIR", "HF_HOME", "STYLISHI_CACHE")}
    for folder in env.values():
        Path(folder).mkdir()
    with running_app(demo_index, sandbox / "app", env=env) as running:
        running.started = time.time()
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def thumb_dir(http) -> Path:
    _, (_, results) = http_call(http, "more_like_this", ["demo-0042", 1, None])
    return Path(urllib.parse.unquote(results[0]["thumbnail"].split("/gradio_api/file=", 1)[1])).parent


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of ../ or %2e)."""
    host = urllib.parse.urlsplit(url)
    conn = HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- what is served ------------------------------------------------------------------------------------------------
def test_allowed_paths_is_the_thumbnail_folder_only(service):
    import app

    options = app.launch_options(service)
    assert options["allowed_paths"] == [str(Path(service.catalog.thumb_dir).resolve())]
    assert options["show_error"] is False and options["enable_monitoring"] is False
    assert options["max_file_size"] == "10mb"
    assert "blocked_paths" not in options or not options["blocked_paths"]


def test_path_traversal_through_the_file_route_is_refused(server, demo_index, thumb_dir, sandbox):
    secret = thumb_dir.parent / "not-a-thumbnail.txt"  # next to the thumbnail folder, not in it
    secret.write_text("secret")
    t = str(thumb_dir)
    up = str(server.uploads)
    attempts = [
        "/etc/passwd", "//etc/passwd", "%2fetc%2fpasswd", "/proc/self/environ", "/proc/self/cmdline",
        f"{t}/../../../../../../etc/passwd", f"{t}/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
        f"{t}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", f"{t}/..%252f..%252f..%252fetc/passwd",
        f"{t}/..\\..\\..\\etc\\passwd", f"{t}/../not-a-thumbnail.txt", f"{t}/..%2fnot-a-thumbnail.txt",
        str(secret), t, str(thumb_dir.parent),
        str(demo_index / "manifest.json"), str(demo_index / "index.faiss"), str(demo_index / "items.parquet"),
        str(demo_index / "model" / "model.safetensors"), str(demo_index / "model" / "config.json"),
        str(ROOT / "app.py"), "app.py", "./app.py", "../app.py", str(ROOT / "requirements.txt"),
        str(ROOT / "stylishi" / "config.py"), str(sandbox / "app" / "app.log"), str(server.log),
        f"{up}/../app.log", f"{up}/..%2fapp.log", up,
        str(sandbox / "home"), str(sandbox / "stylishi_cache"),
        f"{server.url}/config", "http://127.0.0.1:1/", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
    ]
    for target in attempts:
        for prefix in ("/gradio_api/file=", "/file="):
            status, body = raw_get(server.url, prefix + target)
            assert status in (400, 403, 404, 405), (prefix + target, status, body[:200])
            assert b"root:" not in body and b"secret" not in body and b"stylishi-catalog" not in body
    for path in ("/static/../../../../etc/passwd", "/assets/..%2f..%2f..%2f..%2fetc/passwd",
                 "/gradio_api/file=/etc/passwd%00.jpg", "/svelte/../../../../etc/passwd"):
        status, body = raw_get(server.url, path)
        assert status >= 400 and b"root:" not in body, (path, status)


def test_thumbnails_and_example_pictures_are_served(server, thumb_dir):
    thumbs = sorted(thumb_dir.glob("*.jpg"))
    assert thumbs
    status, body = raw_get(server.url, "/gradio_api/file=" + str(thumbs[0]))
    assert status == 200 and body[:2] == b"\xff\xd8"
    example = sorted((ROOT / "data" / "examples").glob("*.jpg"))[0]
    status, body = raw_get(server.url, "/gradio_api/file=" + str(example))
    assert status == 200 and body[:2] == b"\xff\xd8"


def test_api_inputs_cannot_point_at_server_files_or_urls(http, demo_index, server):
    """A FileData path outside the upload cache is refused by Gradio; a URL is never fetched by the server."""
    before = len(server.log_text())
    for path in ("/etc/passwd", str(demo_index / "manifest.json"), str(demo_index / "model" / "model.safetensors"),
                 f"{server.uploads}/../app.log"):
        kind, payload = http_call(http, "search_image", [file_data(path, "x.jpg"), 3, None])
        assert kind == "error", (path, payload)
        assert "root:" not in json.dumps(payload) and "stylishi-catalog" not in json.dumps(payload)
    for url in (f"{server.url}/config", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        kind, payload = http_call(http, "search_image", [{"url": url, "meta": {"_type": "gradio.FileData"}}, 3, None])
        assert kind == "error", (url, payload)
    assert "/config" not in server.log_text()[before:].replace("Cannot move", "")  # no request to itself


def test_the_upload_limit_is_enforced_by_the_server(http):
    """10 MB at the upload route (test_app_api.test_uploads_over_10_mb_are_refused sends 10 MiB + 100 bytes)."""
    under = upload_bytes(http, "under.jpg", b"\xff\xd8\xff" + b"\0" * 9_900_000)
    assert under.status_code == 200
    kind, payload = http_call(http, "search_image", [file_data(under.json()[0], "under.jpg"), 3, None])
    assert kind == "error" and "not a picture we can read" in payload["error"]  # and the upload is let go
    response = upload_bytes(http, "over.jpg", b"\xff\xd8\xff" + b"\0" * 10_500_000)
    assert response.status_code == 413 and "Traceback" not in response.text


def test_uploads_are_never_served_as_active_content(http, server):
    """An upload is served back only while it waits for deletion, and never as HTML or SVG a browser would run."""
    for name, data in (("page.html", b"<html><script>alert(1)</script></html>"),
                       ("vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
                       ("photo.jpg", b"<html><script>alert(1)</script></html>")):
        path = upload_bytes(http, name, data).json()[0]
        response = http.get("/gradio_api/file=" + path)
        if response.status_code == 200:
            content_type = response.headers["content-type"]
            assert not content_type.startswith(("text/html", "image/svg")), (name, content_type)
            if not content_type.startswith("image/"):
                assert response.headers.get("content-disposition", "").startswith("attachment"), name
        http_call(http, "search_image", [file_data(path, name), 3, None])  # refused: not a picture


# -- what is kept ------------------------------------------------------------------------------------------------
def _marked_picture(marker: bytes) -> bytes:
    """A PNG that carries `marker` in a text chunk and in its pixels' bytes (so any copy of it can be found)."""
    img = Image.frombytes("RGB", (16, 16), (marker * 64)[: 16 * 16 * 3])
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker.decode())
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _files_containing(roots: list[Path], needles: list[bytes], since: float) -> list[str]:
    found = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                try:
                    st = path.lstat()
                    if st.st_mtime < since or st.st_size > 50_000_000 or not path.is_file():
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    found.append(str(path))
    return found


def test_no_user_picture_is_kept_anywhere(server, http, sandbox):
    """A query picture, by upload and as the bytes of a data URL (webcam, clipboard): after the query, no copy of it
    anywhere the app can write (its home, temp, Hugging Face and StyliShi caches, the repository), and the upload
    cache is empty a few seconds later. Catalog thumbnails unpacked for results are the app's own files."""
    since = time.time() - 1
    marker = secrets.token_hex(12).encode()
    picture = _marked_picture(marker)
    path = upload_bytes(http, f"selfie-{marker.decode()}.png", picture).json()[0]
    assert (Path(path).read_bytes() == picture) and Path(path).resolve().is_relative_to(server.uploads.resolve())
    kind, _ = http_call(http, "search_image", [file_data(path, "selfie.png"), 3, None])
    assert kind == "complete"
    data_url = "data:image/png;base64," + base64.b64encode(picture).decode()
    kind, _ = http_call(http, "search_image", [{"url": data_url, "meta": {"_type": "gradio.FileData"}}, 3, None])
    assert kind == "complete"
    assert wait_until(lambda: not files_in(server.uploads), timeout=15), files_in(server.uploads)
    needles = [marker, hashlib.sha256(picture).hexdigest().encode(), picture[-200:]]
    found = _files_containing([sandbox, ROOT], needles, since)
    assert not found, found
    assert marker.decode() not in server.log_text()


def test_delete_cache_and_the_janitor_are_tight(service):
    import app

    frequency, age = app.DELETE_CACHE
    assert frequency <= 120 and age <= 300  # the backstop: even an upload never queried goes within minutes
    assert app.FORGET_UPLOAD_AFTER_S <= 10  # each query's upload goes seconds after its query
    demo = app.build_app(service, examples_dir=None)
    assert demo.delete_cache == app.DELETE_CACHE
    assert demo.upload_janitor.after_s == app.FORGET_UPLOAD_AFTER_S


def test_gradios_purge_survives_concurrent_uploads(service, tmp_path, monkeypatch):
    """The purge iterates its file sets in a worker thread while uploads add to them: with plain sets it could stop
    for good ("Set changed size during iteration"); the app's sets iterate over a snapshot."""
    import app
    from gradio.route_utils import delete_files_created_by_app

    demo = app.build_app(service, examples_dir=None)
    files = []
    for i in range(50):
        f = tmp_path / f"upload-{i}.jpg"
        f.write_bytes(b"x")
        files.append(str(f))
    demo.upload_file_set.update(files)
    for f in demo.upload_file_set:  # a plain set raises RuntimeError here
        demo.upload_file_set.add(f + ".new")
        demo.upload_file_set.discard(f)
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            demo.upload_file_set.add(f"/nonexistent/{i}")
            demo.upload_file_set.discard(f"/nonexistent/{i - 5}")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        demo.upload_file_set.update(files)
        for _ in range(20):
            delete_files_created_by_app(demo, None)
    finally:
        stop.set()
        worker.join()
    assert not any(Path(f).exists() for f in files)


def test_an_unexpected_failure_reaches_people_as_a_plain_sentence(caplog):
    import app
    import gradio as gr

    def broken():
        raise KeyError("/srv/secret/path.py line 12")

    with pytest.raises(gr.Error) as caught:
        app._run(broken)
    assert caught.value.message == "Something went wrong on our side. Please try again in a moment."
    assert "search failed" in caplog.text and "KeyError" in caplog.text  # the details stay in the server log
