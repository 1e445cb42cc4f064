"""POST /api/v1/search (stylishi_ui.rest) against a real server: the same answers, limits, errors, log lines, stats
and privacy as the Gradio endpoints, in one request, with its own bounded concurrency."""
from __future__ import annotations

import asyncio
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers import file_data, files_in, http_call, running_app, sandbox_env, upload_bytes

pytestmark = pytest.mark.slow
API = "/api/v1/search"


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rest-sandbox")


@pytest.fixture(scope="module")
def server(demo_index, sandbox):
    env = sandbox_env(sandbox)
    env["STYLISHI_RATE_LIMIT"] = "0"  # many requests here; the limit has its own server below
    env["STYLISHI_SEARCHES_AT_ONCE"] = "3"  # the setting reaches the REST route's admission (stats below)
    with running_app(demo_index, sandbox / "app", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def pictures():
    from stylishi.demo import demo_items

    return {item.id: (_jpeg(item.image), item.metadata) for item in demo_items(limit=60)}


def _gradio(http, name: str, data: list):
    """A Gradio API call over raw HTTP, the inputs left out filled with the endpoint's declared defaults (raw HTTP
    must send every input; the endpoints gain optional ones over time)."""
    params = http.get("/gradio_api/info").json()["named_endpoints"][f"/{name}"]["parameters"]
    return http_call(http, name, data + [p.get("parameter_default") for p in params[len(data):]])


def _stats(http) -> dict:
    return http.get("/stats").json()


def test_an_image_search_answers_what_the_gradio_api_answers(http, server, pictures):
    data, meta = pictures["demo-0042"]
    response = http.post(API, files={"image": ("shirt.jpg", data, "image/jpeg")}, data={"k": "5"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "embed;dur=" in response.headers["server-timing"]
    results = response.json()
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert results[0]["id"] == "demo-0042"  # a catalog picture finds itself first
    assert results[0]["thumbnail"].startswith(server.url + "/media/thumbs/")
    path = upload_bytes(http, "shirt.jpg", data).json()[0]
    kind, outputs = _gradio(http, "search_image", [file_data(path, "shirt.jpg"), 5, None])
    assert kind == "complete", outputs
    assert outputs[1] == results  # the same JSON, field for field (cards.results_json)


def test_a_text_search_multipart_or_urlencoded(http):
    multipart = http.post(API, files={"text": (None, "red dress")})
    urlencoded = http.post(API, data={"text": "red dress", "k": "3"})
    assert multipart.status_code == urlencoded.status_code == 200, (multipart.text, urlencoded.text)
    assert len(multipart.json()) == 10 and len(urlencoded.json()) == 3  # k defaults to 10, as in the Gradio API
    kind, outputs = _gradio(http, "search_text", ["red dress", 10, None])
    assert kind == "complete" and outputs[1] == multipart.json()
    reds = sum(r["colour"].lower() == "red" for r in multipart.json())
    assert reds >= 5, multipart.json()  # semantics, not today's exact neighbours


def test_filters_narrow_the_results(http, pictures):
    data, _ = pictures["demo-0003"]
    response = http.post(API, files={"image": ("q.jpg", data, "image/jpeg")},
                         data={"k": "8", "filters": json.dumps({"colour": ["Red", "Blue"], "gender": "Women"})})
    assert response.status_code == 200, response.text
    results = response.json()
    assert results and all(r["colour"] in ("Red", "Blue") for r in results)
    text = http.post(API, data={"text": "shoes", "filters": '{"colour": "black"}'})
    assert text.status_code == 200 and all(r["colour"] == "Black" for r in text.json())


@pytest.mark.parametrize("fields, status, words", [
    ({"text": "dress", "k": "0"}, 400, "from 1 to 50; got 0"),
    ({"text": "dress", "k": "51"}, 400, "from 1 to 50; got 51"),
    ({"text": "dress", "k": "many"}, 400, "must be a whole number from 1 to 50"),
    ({"text": "dress", "k": "2.5"}, 400, "must be a whole number from 1 to 50"),
    ({"text": "dress", "filters": "colour=red"}, 400, "filters must be a JSON object such as"),
    ({"text": "dress", "filters": "[1, 2]"}, 400, "filters must be an object such as"),
    ({"text": "dress", "filters": '{"fabric": "silk"}'}, 400, "cannot be filtered by 'fabric'"),
    ({"text": "dress", "filters": '{"colour": "Plaid"}'}, 400, "No item has colour 'plaid'"),
    ({"text": "   "}, 400, "Type a few words"),
    ({"text": "x" * 2000}, 400, "characters long"),
    ({}, 400, "Send an `image`"),
    ({"text": "dress", "colour": "red"}, 400, "Unknown form field 'colour'"),
    ({"image": "not-a-file.jpg"}, 400, "`image` must be a file"),
])
def test_bad_requests_answer_a_sentence_with_a_4xx(http, fields, status, words):
    response = http.post(API, files={name: (None, value) for name, value in fields.items()} or {"k": (None, "3")})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert "Traceback" not in response.text and response.headers["x-content-type-options"] == "nosniff"


def test_files_that_are_not_pictures_are_refused_with_the_cores_sentence(http, pictures):
    for name, data, words in (("notes.txt", b"hello, world", "not a picture we can read"),
                              ("anim.gif", b"GIF89a" + b"\0" * 64, "GIF images are not supported"),
                              ("empty.jpg", b"", "The file is empty"),
                              ("cut.jpg", pictures["demo-0001"][0][:300], "")):
        response = http.post(API, files={"image": (name, data, "image/jpeg")})
        assert response.status_code == 400 and words in response.json()["error"], (name, response.text)
    two = http.post(API, files=[("image", ("a.jpg", pictures["demo-0001"][0], "image/jpeg")),
                                ("image", ("b.jpg", pictures["demo-0002"][0], "image/jpeg"))])
    assert two.status_code == 400 and two.json()["error"] == "Send one image per search."
    wrong = http.post(API, files={"text": ("t.txt", b"dress", "text/plain")})
    assert wrong.status_code == 400 and "must be a text field" in wrong.json()["error"]
    json_body = http.post(API, json={"text": "dress"})
    assert json_body.status_code == 415 and "multipart form" in json_body.json()["error"]
    broken = http.post(API, content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=x"})
    assert broken.status_code == 400


def test_oversize_bodies_are_refused_before_they_are_read(http, server):
    """The file limit (10 MB) plus the form's overhead, with a Content-Length or without one (chunked)."""
    big = b"\xff\xd8\xff" + b"\0" * 10_600_000
    response = http.post(API, files={"image": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413 and "too large" in response.json()["error"]
    assert response.headers["x-content-type-options"] == "nosniff"

    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff"
        for _ in range(12):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    response = http.post(API, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    under = http.post(API, files={"image": ("under.jpg", b"\xff\xd8\xff" + b"\0" * 9_900_000, "image/jpeg")})
    assert under.status_code == 400 and "not a picture we can read" in under.json()["error"]


def test_queries_are_logged_and_counted_in_stats_like_the_gradio_ones(http, server, pictures):
    before = _stats(http)
    log_before = server.log_text().count('"event":"query"')
    data, _ = pictures["demo-0010"]
    assert http.post(API, files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "4"}).status_code == 200
    assert http.post(API, data={"text": "secret words of a shopper", "k": "2"}).status_code == 200
    assert http.post(API, data={"text": "dress", "k": "0"}).status_code == 400
    after = _stats(http)
    assert after["queries"] - before["queries"] == 3 and after["errors"] - before["errors"] == 1
    assert after["by_kind"]["image"]["queries"] - before["by_kind"].get("image", {"queries": 0})["queries"] == 1
    assert after["rest"]["served"] - before["rest"]["served"] == 3 and after["rest"]["running_max"] == 3
    assert after["embed_mode"] == "fp32" and after["catalog_embed_mode"] == "fp32"  # the demo is built in fp32
    time.sleep(0.3)
    log = server.log_text()
    assert log.count('"event":"query"') - log_before == 3
    assert '"kind":"image","ok":true,"k":4' in log and '"kind":"text","ok":true,"k":2' in log
    assert "secret words" not in log and "q.jpg" not in log


def test_no_uploaded_picture_touches_the_disk(http, server, sandbox, pictures):
    """The form is parsed in memory: nothing appears in Gradio's upload folder, TMPDIR or anywhere in the sandbox."""
    before = set(files_in(sandbox))
    marker = b"rest-privacy-marker"
    data = pictures["demo-0020"][0] + marker  # JPEG decoders ignore trailing bytes
    for _ in range(3):
        assert http.post(API, files={"image": ("private.jpg", data, "image/jpeg")}).status_code == 200
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    big = _jpeg(Image.fromarray(noise))
    assert len(big) > 1024 * 1024  # where Starlette's own form parser would spool the file to disk
    assert http.post(API, files={"image": ("big.jpg", big + marker, "image/jpeg")}).status_code == 200
    thumbs = sandbox / "stylishi_cache" / "thumbs"  # the catalog's own thumbnails, unpacked when first shown
    new = [p for p in set(files_in(sandbox)) - before if p.name != "app.log" and not p.is_relative_to(thumbs)]
    assert not new, new
    assert not any(marker in p.read_bytes() for p in files_in(sandbox) if p.stat().st_size < 50_000_000)


def test_concurrent_requests_are_all_served_in_a_bounded_queue(server, pictures):
    datas = [d for d, _ in list(pictures.values())[:12]]

    def one(i):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            if i % 3 == 2:
                return client.post(API, data={"text": "blue jeans", "k": "3"}).status_code
            return client.post(API, files={"image": ("q.jpg", datas[i], "image/jpeg")}, data={"k": "3"}).status_code

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(one, range(12))) == [200] * 12


def test_admission_runs_a_few_queues_a_few_and_turns_the_rest_away():
    """The REST route's own concurrency control, on its own: 1 running, 1 waiting, the third is turned away; a
    waiter that waits too long is turned away too."""
    from stylishi_ui.rest import Admission, Busy

    async def scenario():
        gate = Admission(running=1, waiting=1, wait_s=0.5)
        order, release = [], asyncio.Event()

        async def search(name, hold):
            try:
                async with gate:
                    order.append(name)
                    if hold:
                        await release.wait()
                return "served"
            except Busy:
                return "busy"

        first = asyncio.create_task(search("a", True))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(search("b", False))
        await asyncio.sleep(0.01)
        third = await search("c", False)  # one running, one waiting: no room
        release.set()
        results = [await first, await second, third]
        slow = Admission(running=1, waiting=4, wait_s=0.05)
        async with slow:
            try:
                async with slow:
                    late = "served"
            except Busy:
                late = "busy"
        return results, order, gate.snapshot(), late

    results, order, snapshot, late = asyncio.run(scenario())
    assert results == ["served", "served", "busy"] and order == ["a", "b"]
    assert snapshot["served"] == 2 and snapshot["turned_away"] == 1 and snapshot["waiting_now"] == 0
    assert late == "busy"


def test_a_busy_answer_is_503_with_retry_after(service):
    """The route's answer when admission turns a request away, through the route itself (ASGI, no network)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from stylishi_ui.media import Media
    from stylishi_ui.rest import SearchAPI

    api = SearchAPI(service, Media(service.catalog.thumb_dir, []), running=1, waiting=0, wait_s=0.1)
    app = FastAPI(routes=[api.route()])

    async def hold():
        async with api.admission:
            await asyncio.sleep(0.5)

    import threading

    with TestClient(app) as client:
        holder = threading.Thread(target=lambda: client.portal.call(hold))
        holder.start()
        time.sleep(0.1)
        response = client.post(API, data={"text": "red dress"})
        holder.join()
        ok = client.post(API, data={"text": "red dress", "k": "2"})
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert "busy" in response.json()["error"]
    assert ok.status_code == 200 and len(ok.json()) == 2


def test_the_rate_limit_covers_the_rest_route(demo_index, tmp_path):
    env = {"STYLISHI_RATE_LIMIT": "30"}  # 30 a minute in bursts of 6
    with running_app(demo_index, tmp_path / "app", env=env) as app:
        with httpx.Client(base_url=app.url, timeout=60) as http:
            answers = [http.post(API, data={"text": "red dress", "k": "1"}) for _ in range(10)]
            refused = [r for r in answers if r.status_code == 429]
            assert refused and answers[0].status_code == 200
            assert int(refused[0].headers["retry-after"]) >= 1
            assert refused[0].json()["error"].startswith("Too many requests from your address: at most 30 a minute")
            assert refused[0].headers["x-content-type-options"] == "nosniff"
