"""Security: no pickle loaded anywhere; file inputs only uploads this server received (one message for anything else,
on every route); files served only from the app's own routes and its upload folder (no path traversal, no
server-side fetches); every event through the queue; bodies, uploads and request rates bounded; memory per query
bounded whatever the picture's mode; the app's own temporary folder, emptied at start and stop; no server folder in
/config or results; nothing a person sent in the log; no user picture kept; dependencies pinned.
The requests an independent probe used (issue 14) are here as they were sent.

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

from tests.helpers import file_data, files_in, http_call, running_app, sandbox_env, upload_bytes, wait_until

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "app.py", ROOT / "build_index.py", *sorted((ROOT / "stylishi").glob("*.py")),
           *sorted((ROOT / "stylishi_ui").glob("*.py")),
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


def test_a_model_folder_with_only_pickled_weights_is_refused_without_unpickling(demo_index, tmp_path):
    """The embedder loads safetensors only: a folder whose weights are a pickle (pytorch_model.bin) is refused, and
    the pickle is never opened (unpickling it would create a file)."""
    import pickle
    import shutil

    from stylishi.embedder import Embedder
    from stylishi.errors import ModelError

    names = {p.name for p in (demo_index / "model").iterdir()}
    assert "model.safetensors" in names and not {n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))}
    folder = tmp_path / "pickled-model"
    shutil.copytree(demo_index / "model", folder)
    (folder / "model.safetensors").unlink()
    opened = tmp_path / "the-pickle-was-opened"

    class Trap:
        def __reduce__(self):
            return (open, (str(opened), "w"))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": Trap()}))
    with pytest.raises(ModelError):
        Embedder.load(folder, mode="fp32", device="cpu")
    assert not opened.exists()


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
    env = sandbox_env(sandbox)
    env["STYLISHI_RATE_LIMIT"] = "0"  # hundreds of requests here; the limit has its own server below
    with running_app(demo_index, sandbox / "app", env=env) as running:
        running.started = time.time()
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def thumb_dir(http, sandbox) -> Path:
    http_call(http, "more_like_this", ["demo-0042", 1, None])  # thumbnails unpacked
    (folder,) = (sandbox / "stylishi_cache" / "thumbs").iterdir()
    return folder


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
def test_launch_options_serve_no_server_folder_and_take_the_limit_from_the_settings(service):
    from stylishi.config import Limits
    from stylishi_ui.page import build_app
    from stylishi_ui.server import launch_options

    demo = build_app(service, examples_dir=None)
    options = launch_options(demo, service)
    assert "allowed_paths" not in options and "blocked_paths" not in options  # pictures come from /media/...
    assert options["max_file_size"] == Limits().max_bytes == service.limits.max_bytes
    assert options["show_error"] is False and options["enable_monitoring"] is False
    from stylishi_ui.gradio_compat import queue_max_size

    assert demo.api_open is False and 0 < queue_max_size(demo) <= 100  # every event through the bounded queue


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


def test_thumbnails_and_example_pictures_are_served_at_neutral_urls_only(server, thumb_dir):
    thumbs = sorted(thumb_dir.glob("*.jpg"))
    example = sorted((ROOT / "data" / "examples").glob("*.jpg"))[0]
    assert thumbs
    for route, path in (("/media/thumbs/", thumbs[0]), ("/media/examples/", example)):
        status, body = raw_get(server.url, route + path.name)
        assert status == 200 and body[:2] == b"\xff\xd8"
        status, body = raw_get(server.url, "/gradio_api/file=" + str(path))  # not by their folder on the server
        assert status in (403, 404) and body[:2] != b"\xff\xd8"
    for name in ("..%2f..%2fmanifest.json", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", ".hidden.jpg", "x.txt"):
        for route in ("/media/thumbs/", "/media/examples/"):
            status, body = raw_get(server.url, route + name)
            assert status == 404 and b"root:" not in body, (route + name, status)


NOT_HERE = "That picture was not uploaded to this app."


def test_file_inputs_naming_server_files_are_refused_on_every_route(http, demo_index, server, sandbox):
    """Issue 14, point 1: `{"path": "/etc/shadow"}` (no meta, empty meta, another _type, Gradio's own FileData) on
    /call, /call/v2, /run, /api and the page's /queue/join: one answer, the same for a file that exists and one that
    does not, and the server opens nothing (the core's "not a picture" or "could not be found" never comes back)."""
    before = len(server.log_text())
    secret = sandbox / "home" / "private.png"
    secret.write_bytes(_marked_picture(b"a-private-picture-on-the-server"))
    targets = ["/etc/shadow", "/etc/passwd", "/no/such/file", str(secret), str(demo_index / "manifest.json"),
               f"{server.uploads}/../app.log", f"{server.uploads}/stylishi/../../app.log", "app.py", "../app.py",
               str(ROOT / "app.py"), "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"]
    metas = [None, {}, {"_type": "gradio.ImageData"}, {"_type": "gradio.FileData"}]
    answers = set()
    for target in targets:
        for meta in metas:
            value = {"path": target} if meta is None else {"path": target, "meta": meta}
            for route, body in (
                ("/gradio_api/call/search_image", {"data": [value, 2, None]}),
                ("/gradio_api/call/v2/search_image", {"data": [value, 2, None]}),
                ("/gradio_api/run/search_image", {"data": [value, 2, None]}),
                ("/gradio_api/api/search_image", {"data": [value, 2, None]}),
                ("/gradio_api/queue/join", {"data": [value, 2, None], "fn_index": 0, "session_hash": "probe"}),
                ("/gradio_api/queue/join", {"data": [{"nested": [value]}], "fn_index": 0, "session_hash": "p"}),
            ):
                response = http.post(route, json=body)
                assert response.status_code == 400, (route, target, meta, response.status_code, response.text)
                answers.add(response.text)
    assert len(answers) == 1 and NOT_HERE in answers.pop()
    log = server.log_text()[before:]
    assert "/etc/shadow" not in log and "private.png" not in log and "Traceback" not in log


def test_urls_are_never_fetched_by_the_server(http, server):
    before = len(server.log_text())
    for url in (f"{server.url}/config", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        kind, payload = http_call(http, "search_image", [{"url": url, "meta": {"_type": "gradio.FileData"}}, 3, None])
        assert kind == "error", (url, payload)
    assert "/config" not in server.log_text()[before:]  # no request to itself


def test_the_query_image_refuses_a_path_that_is_not_an_upload(service):
    """The same rule inside the app (a second fence behind the request guard): the query image's preprocess."""
    import gradio as gr
    from gradio.data_classes import FileData

    from stylishi_ui.page import build_app

    demo = build_app(service, examples_dir=None)
    image = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "query-image")
    for path in ("/etc/passwd", "/no/such/file", str(ROOT / "app.py")):
        with pytest.raises(gr.Error, match=NOT_HERE):
            image.preprocess(FileData(path=path))
    assert image.preprocess(None) is None


def test_the_upload_limit_is_enforced_by_the_server(http):
    """10 MB at the upload route (test_app_api.test_uploads_over_10_mb_are_refused sends 10 MiB + 100 bytes)."""
    under = upload_bytes(http, "under.jpg", b"\xff\xd8\xff" + b"\0" * 9_900_000)
    assert under.status_code == 200
    kind, payload = http_call(http, "search_image", [file_data(under.json()[0], "under.jpg"), 3, None])
    assert kind == "error" and "not a picture we can read" in payload["error"]  # and the upload is let go
    response = upload_bytes(http, "over.jpg", b"\xff\xd8\xff" + b"\0" * 10_500_000)
    assert response.status_code == 413 and "Traceback" not in response.text


def test_an_upload_request_carries_one_file(http, server):
    """Issue 14, point 4: one upload request with 1,000 files is refused; at most one (cut-off) file reaches the
    upload folder, and Gradio's purge takes it."""
    before = set(files_in(server.uploads))
    files = [("files", (f"f{i}.jpg", b"\xff\xd8\xff" + bytes([i % 256]) * 100, "image/jpeg")) for i in range(1000)]
    response = http.post("/gradio_api/upload", files=files)
    assert response.status_code == 400 and response.json() == {"error": "Send one file per upload request."}
    assert len(set(files_in(server.uploads)) - before) <= 1
    two = http.post("/gradio_api/upload", files=files[:2])
    assert two.status_code == 400
    one = http.post("/gradio_api/upload", files=files[:1])
    assert one.status_code == 200 and len(one.json()) == 1
    for left in [*one.json(), *map(str, set(files_in(server.uploads)) - before)]:  # let them go (not pictures)
        http_call(http, "search_image", [file_data(left, "f.jpg"), 1, None])


def test_request_bodies_over_the_limit_are_refused_before_they_are_read(http, server):
    """Issue 14, point 2c: a 150 MB data URL in the API's url field is refused (413) from its Content-Length, and a
    body sent without one is cut off at the limit; the server's memory does not grow by the payload."""
    rss = _rss_mb(server.proc.pid)
    big = "data:image/png;base64," + "A" * (150 * 1024 * 1024)
    body = json.dumps({"data": [{"url": big, "meta": {"_type": "gradio.FileData"}}, 2, None]}).encode()
    for route in ("/gradio_api/call/search_image", "/gradio_api/queue/join", "/gradio_api/run/search_image"):
        response = http.post(route, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "too large" in response.json()["error"], route

    def chunks():
        yield b'{"data": [{"url": "data:image/png;base64,'
        for _ in range(40):
            yield b"A" * (1024 * 1024)
        yield b'"}, 2, null]}'

    response = http.post("/gradio_api/call/search_image", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    del big, body
    assert _rss_mb(server.proc.pid) - rss < 60
    # Just under the limit, the data URL is measured (not decoded) by the query image and refused with its size.
    near = "data:image/png;base64," + "A" * (4 * -(-10 * 1024 * 1024 // 3) + 30_000)  # 10.5 MB decoded
    kind, payload = http_call(http, "search_image", [{"url": near, "meta": {"_type": "gradio.FileData"}}, 2, None])
    assert kind == "error" and "the most we accept is 10 MB" in payload["error"], payload


def test_every_event_goes_through_the_queue(http):
    """Issue 14, point 2a: /run and /api (which skipped the queue and its concurrency limit) are refused."""
    for route in ("/gradio_api/run/search_text", "/gradio_api/api/search_text", "/gradio_api/run/more_like_this"):
        response = http.post(route, json={"data": ["red dress", 2, None]})
        assert response.status_code == 404 and "results" not in response.text, (route, response.text)
    assert http_call(http, "search_text", ["red dress", 2, None])[0] == "complete"


def test_unknown_endpoints_answer_404_and_every_response_says_nosniff(http, thumb_dir):
    for method, route in (("POST", "/gradio_api/call/nope"), ("GET", "/gradio_api/call/nope/123"),
                          ("POST", "/gradio_api/call/v2/nope")):
        response = http.request(method, route, json={"data": []} if method == "POST" else None)
        assert response.status_code == 404 and "search_image" in response.json()["error"], route
    for route in ("/", "/config", "/stats", "/gradio_api/info", f"/media/thumbs/{next(thumb_dir.iterdir()).name}",
                  "/media/thumbs/nope.jpg", "/gradio_api/call/nope", "/gradio_api/file=/etc/passwd"):
        assert http.get(route).headers.get("x-content-type-options") == "nosniff", route
    upload = upload_bytes(http, "x.jpg", b"x")
    assert upload.headers.get("x-content-type-options") == "nosniff"
    http_call(http, "search_image", [file_data(upload.json()[0], "x.jpg"), 1, None])  # let it go


def test_config_and_results_name_no_server_folder(http, server, sandbox):
    """Issue 14, point 5: /config, the API's JSON and its gallery hold no absolute path of the home folder, the
    caches or the checkout (thumbnails and examples are /media/... URLs)."""
    folders = [str(ROOT), str(sandbox), str(Path.home()), "/tmp/", "/work/"]
    config = http.get("/config").text
    kind, (gallery, results) = http_call(http, "search_text", ["red dress", 3, None])
    kind2, (gallery2, results2) = http_call(http, "more_like_this", ["demo-0042", 3, None])
    for text in (config, json.dumps(gallery), json.dumps(results), json.dumps(gallery2), json.dumps(results2)):
        for folder in folders:
            assert folder not in text, folder
    assert all(r["thumbnail"].startswith(server.url + "/media/thumbs/") for r in results + results2)
    assert set(results[0]) == {"rank", "id", "score", "match", "name", "category", "article_type", "colour",
                               "thumbnail", "folded"}


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def _peak_mb_of(pid: int, action) -> float:
    """The server's peak RSS during `action`, above its RSS before (the kernel's high-water mark, reset first)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _rss_mb(pid)
    action()
    return _rss_mb(pid, "VmHWM") - before


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_no_query_costs_more_than_about_60_mb_whatever_its_mode(http, server):
    """Issue 14, point 2b: a 39 KB 16-bit 4096x4096 PNG added ~412 MB per query (float64 conversion). Now a query's
    peak is bounded by the decoded picture: reduced before colour conversion, integer arithmetic, JPEG at 1/4."""
    import numpy as np

    pictures = {
        "16-bit grey PNG": _encoded(Image.fromarray(np.zeros((4096, 4096), np.uint16)), "PNG"),
        "RGB JPEG": _encoded(Image.new("RGB", (4096, 4096), (180, 40, 40)), "JPEG"),
        "CMYK JPEG": _encoded(Image.new("CMYK", (4096, 4096), (0, 200, 200, 0)), "JPEG"),
        "RGBA PNG": _encoded(Image.new("RGBA", (4096, 4096), (10, 200, 10, 128)), "PNG"),
        "palette PNG": _encoded(Image.new("P", (4096, 4096), 3), "PNG"),
    }
    peaks = {}
    for name, data in pictures.items():
        path = upload_bytes(http, "big.png", data).json()[0]
        http_call(http, "search_text", ["warm", 1, None])

        def query():
            kind, payload = http_call(http, "search_image", [file_data(path, "big.png"), 2, None])
            assert kind == "complete", (name, payload)

        peaks[name] = _peak_mb_of(server.proc.pid, query)
    print("\npeak RSS above idle, one query each (MB):", {k: round(v, 1) for k, v in peaks.items()})
    assert peaks["16-bit grey PNG"] < 80, peaks  # was ~412 MB
    assert peaks["RGB JPEG"] < 40 and peaks["CMYK JPEG"] < 40, peaks
    assert max(peaks.values()) < 100, peaks  # an RGBA PNG decodes to 64 MB before it can be reduced


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
    assert wait_until(lambda: not Path(path).exists(), timeout=15), path  # its upload is gone, 5 s after
    needles = [marker, hashlib.sha256(picture).hexdigest().encode(), picture[-200:]]
    found = _files_containing([sandbox, ROOT], needles, since)
    assert not found, found
    assert marker.decode() not in server.log_text()


def test_delete_cache_and_the_janitor_are_tight(service):
    from stylishi_ui import page

    frequency, age = page.DELETE_CACHE
    assert frequency <= 120 and age <= 300  # the backstop: even an upload never queried goes within minutes
    assert page.FORGET_UPLOAD_AFTER_S <= 10  # each query's upload goes seconds after its query
    demo = page.build_app(service, examples_dir=None)
    assert demo.delete_cache == page.DELETE_CACHE
    assert demo.upload_janitor.after_s == page.FORGET_UPLOAD_AFTER_S


def test_gradios_purge_survives_concurrent_uploads(service, tmp_path, monkeypatch):
    """The purge iterates its file sets in a worker thread while uploads add to them: with plain sets it could stop
    for good ("Set changed size during iteration"); the app's sets iterate over a snapshot."""
    from gradio.route_utils import delete_files_created_by_app

    from stylishi_ui.page import build_app

    demo = build_app(service, examples_dir=None)
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
    import gradio as gr

    from stylishi_ui.errors import run

    def broken():
        raise KeyError("/srv/secret/path.py line 12")

    with pytest.raises(gr.Error) as caught:
        run(broken)
    assert caught.value.message == "Something went wrong on our side. Please try again in a moment."
    assert "search failed" in caplog.text and "KeyError" in caplog.text  # the details stay in the server log


def test_concurrent_big_queries_wait_in_the_queue_with_bounded_memory(http, server):
    """Issue 14, point 2a: 20 concurrent 4096² JPEG searches took RSS to 3.4 GB through /run. Now they all go
    through the queue (two at a time) and each is decoded at a quarter of its size."""
    from concurrent.futures import ThreadPoolExecutor

    data = _encoded(Image.new("RGB", (4096, 4096), (40, 40, 180)), "JPEG")
    paths = [upload_bytes(http, f"big-{i}.jpg", data + bytes([i])).json()[0] for i in range(20)]

    def query(path):
        with httpx.Client(base_url=server.url, timeout=120) as client:
            return http_call(client, "search_image", [file_data(path, "big.jpg"), 2, None])[0]

    def all_at_once():
        with ThreadPoolExecutor(20) as pool:
            assert list(pool.map(query, paths)) == ["complete"] * 20

    peak = _peak_mb_of(server.proc.pid, all_at_once)
    print(f"\npeak RSS above idle, 20 concurrent 4096² JPEG searches: {peak:.1f} MB")
    assert peak < 150


# -- the app's own temporary folder, stopping, the rate limit: a server of their own ---------------------------------
def test_own_temp_folder_emptied_at_start_and_on_sigterm_and_a_rate_limit(demo_index, tmp_path):
    """Issue 14, points 3 and 4: uploads live in `<STYLISHI_CACHE>/tmp` (mode 0700), not /tmp/gradio; leftovers of
    an earlier run are gone at start; on SIGTERM the pending deletions are done and the folder is emptied (a queried
    upload and one never queried). Over STYLISHI_RATE_LIMIT requests a minute, a client gets 429 and a sentence."""
    import signal
    import stat

    cache = tmp_path / "cache"
    leftover = cache / "tmp" / "0123abcd" / "left-from-a-killed-run.jpg"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\xff\xd8\xff")
    env = {"STYLISHI_CACHE": str(cache), "GRADIO_TEMP_DIR": "", "STYLISHI_RATE_LIMIT": "30"}
    with running_app(demo_index, tmp_path / "app", env=env) as app:
        temp = (cache / "tmp").resolve()
        assert not leftover.exists() and stat.S_IMODE(temp.stat().st_mode) == 0o700
        with httpx.Client(base_url=app.url, timeout=60) as http:
            picture = _marked_picture(b"queried-then-sigterm")
            queried = upload_bytes(http, "q.png", picture).json()[0]
            unqueried = upload_bytes(http, "u.png", picture + b"\0").json()[0]
            assert Path(queried).resolve().is_relative_to(temp) and Path(unqueried).resolve().is_relative_to(temp)
            assert http_call(http, "search_image", [file_data(queried, "q.png"), 2, None])[0] == "complete"
            # 30 a minute in bursts of 6: three POSTs so far, so a few more and the client must wait.
            answers = [http.post("/gradio_api/call/search_text", json={"data": ["red dress", 1, None]})
                       for _ in range(8)]
            refused = [r for r in answers if r.status_code == 429]
            assert refused and int(refused[0].headers["retry-after"]) >= 1
            assert refused[0].json()["error"].startswith("Too many requests from your address: at most 30 a minute")
            assert http.get("/config").status_code == 200  # pages and pictures are not counted
            assert Path(queried).exists() and Path(unqueried).exists()  # the query was under 5 s ago
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=30) == 0
        assert not files_in(temp), files_in(temp)
        assert re.search(r"stopped: \d+ pending deletions done", app.log_text())
