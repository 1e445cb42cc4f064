"""The app's API for programs: `python app.py --index <demo index>` in a subprocess, called through gradio_client
and through Gradio's raw HTTP API, exactly as a program on another machine would.

The round-trip times measured here are written to test-artifacts/api-roundtrip.json.
"""
from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.helpers import api_client, http_call, running_app

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
ITEM = "demo-0042"  # a catalog item: its own picture must find it first
SECRET_NAME = "private-selfie-7f3a"  # an upload's file name that must never reach the server log


@pytest.fixture(scope="module")
def app_server(demo_index, tmp_path_factory):
    """The real CLI: load, warm up, log one startup line, serve on 127.0.0.1 (MCP asked for by env var)."""
    t0 = time.perf_counter()
    with running_app(demo_index, tmp_path_factory.mktemp("app"),
                     env={"STYLISHI_MCP": "1", "STYLISHI_RATE_LIMIT": "0"}) as app:
        startup_s = time.perf_counter() - t0
        assert httpx.get(app.url + "/", timeout=10).status_code == 200
        yield {"url": app.url, "log": app.log, "startup_s": startup_s}


@pytest.fixture(scope="module")
def client(app_server):
    """What the README recommends to programs: gallery pictures come back as URLs, not downloaded."""
    return api_client(app_server["url"], download_files=False)


@pytest.fixture(scope="module")
def downloading_client(app_server):
    """gradio_client's default: every gallery picture is downloaded to a local file."""
    return api_client(app_server["url"])


@pytest.fixture(scope="module")
def items(demo_index) -> pd.DataFrame:
    return pd.read_csv(demo_index / "catalog_images" / "metadata.csv").set_index("id")


def picture(demo_index, item_id: str = ITEM) -> str:
    return str(demo_index / "catalog_images" / f"{item_id}.png")


# -- startup --------------------------------------------------------------------------------------------------------
def test_startup_logs_one_clear_line(app_server, demo_index):
    log = app_server["log"].read_text()
    ready = [line for line in log.splitlines() if "StyliShi ready" in line]
    assert len(ready) == 1, log
    line = ready[0]
    for part in (str(demo_index), "1200 items", "64-d", "warm-up", app_server["url"]):
        assert part in line, line
    try:
        import mcp  # noqa: F401
    except ImportError:  # asked for by STYLISHI_MCP=1 without the extra: a clear warning, and the app still serves
        assert 'pip install "gradio[mcp]"' in log
        assert "MCP off" in line
    else:
        assert "MCP on" in line
        schema = httpx.get(app_server["url"] + "/gradio_api/mcp/schema", timeout=10).json()
        names = json.dumps(schema)
        for tool in ("search_image", "search_text", "more_like_this", "refine", "shop_the_look"):
            assert tool in names


# -- the endpoints --------------------------------------------------------------------------------------------------
def test_api_lists_exactly_the_documented_endpoints(client):
    info = client.view_api(return_format="dict", print_info=False)
    named = info["named_endpoints"]
    assert set(named) == {"/search_image", "/search_text", "/more_like_this", "/refine", "/shop_the_look"}, set(named)
    assert not info.get("unnamed_endpoints")
    look = named.pop("/shop_the_look")  # its own shape: a picture and k, one JSON list of garments
    assert [(p["parameter_name"], p["parameter_has_default"]) for p in look["parameters"]] == [("image", False),
                                                                                              ("k", True)]
    assert look["parameters"][1]["parameter_default"] == 5 and len(look["returns"]) == 1
    first = {"/search_image": ["image"], "/search_text": ["text"], "/more_like_this": ["item_id"],
             "/refine": ["positive_ids", "negative_ids"]}
    more = {"/search_image": ["box", "text", "text_weight"]}  # the region and "like this, but …", before dedup
    for name, endpoint in named.items():
        params = endpoint["parameters"]
        assert [p["parameter_name"] for p in params] == first[name] + ["k", "filters", *more.get(name, []), "dedup"]
        assert all(p["parameter_has_default"] for p in params[len(first[name]):])
        assert not params[0]["parameter_has_default"]  # the query is required ...
        rest = params[len(first[name]):]
        assert rest[0]["parameter_has_default"] and rest[0]["parameter_default"] == 10  # ... the rest optional
        assert rest[1]["parameter_has_default"]
        assert params[-1]["parameter_default"] is True  # dedup: on by default
        assert len(endpoint["returns"]) == 2  # the gallery and the JSON list


def test_image_search_finds_the_catalog_picture_first(downloading_client, demo_index):
    from gradio_client import handle_file

    gallery, results = downloading_client.predict(handle_file(picture(demo_index)), api_name="/search_image")
    assert len(gallery) == len(results) == 10
    top = results[0]
    assert top["id"] == ITEM and top["rank"] == 1
    assert top["score"] == pytest.approx(1.0, abs=1e-4)
    assert set(top) == {"rank", "id", "score", "match", "name", "category", "article_type", "colour", "thumbnail",
                        "folded"}
    assert top["folded"] == 0  # the demo has no near-duplicates
    assert top["thumbnail"].rsplit("/", 1)[-1] == f"{ITEM}.jpg"
    assert top["name"] == "Pink polka dot t-shirt"
    assert (top["category"], top["article_type"], top["colour"]) == ("Apparel", "Tshirts", "Pink")
    assert [r["rank"] for r in results] == list(range(1, 11))
    assert all(a["score"] >= b["score"] for a, b in zip(results, results[1:]))
    # The demo index is calibrated: "% match" is the chance of the same article type, not the raw cosine.
    assert re.match(r"#1 · [\d.]+% match\nPink polka dot t-shirt", gallery[0]["caption"]), gallery[0]["caption"]
    assert Path(gallery[0]["image"]).name == f"{ITEM}.jpg" and Path(gallery[0]["image"]).is_file()


def test_thumbnail_url_is_served(client, demo_index):
    from gradio_client import handle_file

    _, results = client.predict(handle_file(picture(demo_index)), 1, api_name="/search_image")
    response = httpx.get(results[0]["thumbnail"], timeout=10)
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"  # a JPEG


def test_text_search_returns_k_results(client):
    gallery, results = client.predict("red floral summer dress", 7, api_name="/search_text")
    assert len(gallery) == len(results) == 7
    assert len({r["id"] for r in results}) == 7


def test_more_like_this_by_id(client):
    gallery, results = client.predict(ITEM, 5, api_name="/more_like_this")
    assert len(results) == 5
    assert ITEM not in {r["id"] for r in results} and [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    # A result's category (and type, colour) passed back as a filter is understood.
    top = results[0]
    _, same = client.predict(ITEM, 5, {"category": top["category"], "article_type": top["article_type"],
                                       "colour": top["colour"]}, api_name="/more_like_this")
    assert same and all((r["category"], r["article_type"], r["colour"]) == (top["category"], top["article_type"],
                                                                             top["colour"]) for r in same)


def test_filters_narrow_results(client, demo_index, items):
    from gradio_client import handle_file

    # The query is a pink t-shirt; only red items, then only red unisex items, may come back.
    _, red = client.predict(handle_file(picture(demo_index)), 20, {"colour": ["Red"]}, api_name="/search_image")
    assert len(red) == 20 and ITEM not in {r["id"] for r in red}
    assert set(items.loc[[r["id"] for r in red], "colour"]) == {"Red"}
    _, red_unisex = client.predict(handle_file(picture(demo_index)), 50, {"colour": "Red", "gender": "Unisex"},
                                  api_name="/search_image")
    expected = items[(items.colour == "Red") & (items.gender == "Unisex")]
    assert 0 < len(expected) < 50
    assert {r["id"] for r in red_unisex} == set(expected.index)  # fewer than k exist: all of them, nothing else
    # Filters as JSON text work too, on every endpoint.
    _, shoes = client.predict(ITEM, 5, '{"article_type": ["Casual Shoes"]}', api_name="/more_like_this")
    assert set(items.loc[[r["id"] for r in shoes], "article_type"]) == {"Casual Shoes"}


def test_bad_requests_get_clear_errors_and_the_app_stays_up(client, demo_index, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    corrupt = tmp_path / "photo.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    with pytest.raises(AppError, match="not a picture we can read"):
        client.predict(handle_file(str(corrupt)), api_name="/search_image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(Path(picture(demo_index)).read_bytes()[:400])
    with pytest.raises(AppError, match="damaged or incomplete"):
        client.predict(handle_file(str(truncated)), api_name="/search_image")
    with pytest.raises(AppError, match="no item with id"):
        client.predict("no-such-item", api_name="/more_like_this")
    with pytest.raises(AppError, match="cannot be filtered by 'price'"):
        client.predict("dress", 5, {"price": "cheap"}, api_name="/search_text")
    with pytest.raises(AppError, match="filters must be"):
        client.predict("dress", 5, "[not json", api_name="/search_text")
    with pytest.raises(AppError, match="Type a few words"):
        client.predict("   ", api_name="/search_text")
    # ... and the next call still works.
    _, results = client.predict(handle_file(picture(demo_index)), 3, api_name="/search_image")
    assert results[0]["id"] == ITEM


def test_notice_banner_is_shown_when_the_service_has_one(service):
    """service.notice (the demo/starter/cache fallback line) goes on the page; without one there is no banner."""
    import copy

    from stylishi_ui.page import build_app

    def banner(svc):
        demo = build_app(svc, examples_dir=None)
        return next(c for c in demo.config["components"] if c["props"].get("elem_id") == "notice")["props"]

    assert banner(service)["visible"] is False
    noted = copy.copy(service)
    noted.startup = None
    noted.notice = "This is the offline demo <catalog>: run build_index.py for a real one."
    props = banner(noted)
    assert props["visible"] is True and "offline demo &lt;catalog&gt;" in props["value"]


def test_the_start_up_notice_is_one_line_with_the_reasons_folded(service):
    """From service.startup (stylishi.startup.StartupReport): the headline as one line, each failed or skipped
    attempt as a line inside a <details> element (escaped), nothing when the index asked for is served."""
    import copy

    from stylishi.startup import Attempt, StartupReport
    from stylishi_ui.cards import notice_html

    report = StartupReport(asked_for="acme/<shop>", fallback="demo", attempts=(
        Attempt("hub", "acme/<shop>", "failed", reason="The Hub did not answer in 5 s.", fix="check HF_ENDPOINT"),
        Attempt("cache", "acme/<shop>", "skipped", reason="Nothing is cached."),
        Attempt("demo", "demo", "served")))
    fallen = copy.copy(service)
    fallen.startup, fallen.notice = report, report.headline()
    html = notice_html(fallen)
    head, folded = html.split("<details>", 1)
    assert head == "<p>Offline demo: the catalog index acme/&lt;shop&gt; could not be loaded.</p>"
    assert folded.startswith("<summary>") and folded.count("<li>") == 2 and "The Hub did not answer" in folded
    assert "acme/<shop>" not in html
    served = copy.copy(service)
    served.startup = StartupReport(asked_for="x", attempts=(Attempt("folder", "x", "served"),))
    served.notice = None
    assert notice_html(served) == ""


# -- raw HTTP, limits, privacy ----------------------------------------------------------------------------------------
def upload(http: httpx.Client, path: Path) -> dict:
    with open(path, "rb") as f:
        response = http.post("/gradio_api/upload", files={"files": (path.name, f, "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def test_raw_http_api(app_server, demo_index):
    with httpx.Client(base_url=app_server["url"], timeout=30) as http:
        kind, (gallery, results) = http_call(http, "search_image", [upload(http, Path(picture(demo_index))), 4, None])
        assert kind == "complete" and results[0]["id"] == ITEM and len(gallery) == 4
        kind, (_, results) = http_call(http, "search_text", ["black jacket", 3, {"colour": "Black"}])
        assert kind == "complete" and len(results) == 3
        kind, message = http_call(http, "more_like_this", ["nope", 3, None])
        assert kind == "error" and "no item with id" in json.dumps(message)


def test_uploads_over_10_mb_are_refused(app_server):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024 + 100)
    response = httpx.post(app_server["url"] + "/gradio_api/upload", files={"files": ("big.png", big, "image/png")},
                          timeout=30)
    assert response.status_code == 413, response.text


def test_no_monitoring_dashboard_nor_run_history(app_server):
    for path in ("/monitoring", "/monitoring/summary"):
        response = httpx.get(app_server["url"] + path, timeout=10)
        assert response.status_code == 403 and "not enabled" in response.text
    config = httpx.get(app_server["url"] + "/config", timeout=10).json()
    assert config["run_history"] is False
    assert config["max_file_size"] == 10 * 1000 * 1000 or config["max_file_size"] == 10 * 1024 * 1024


def test_user_pictures_are_not_logged(app_server, client, demo_index, tmp_path):
    from gradio_client import handle_file

    mine = tmp_path / f"{SECRET_NAME}.png"
    mine.write_bytes(Path(picture(demo_index)).read_bytes())
    client.predict(handle_file(str(mine)), 2, api_name="/search_image")
    bad = tmp_path / f"{SECRET_NAME}-bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(Exception):
        client.predict(handle_file(str(bad)), api_name="/search_image")
    client.predict("a secret description 7f3a", 2, api_name="/search_text")
    log = app_server["log"].read_text()
    assert SECRET_NAME not in log and "7f3a" not in log


# -- speed ----------------------------------------------------------------------------------------------------
def test_round_trip_times(app_server, client, downloading_client, demo_index):
    """An image search end to end, k=10: through gradio_client (which also downloads the 10 thumbnails) and over
    the raw HTTP API (upload + call + event stream). Recorded as an artifact; bounded loosely against regressions."""
    from gradio_client import handle_file

    path = picture(demo_index, "demo-0100")

    def timed(fn, n=4):
        fn()  # warm
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
        return statistics.median(out)

    via_client = timed(lambda: downloading_client.predict(handle_file(path), 10, api_name="/search_image"))
    via_client_no_download = timed(lambda: client.predict(handle_file(path), 10, api_name="/search_image"))
    with httpx.Client(base_url=app_server["url"], timeout=30) as http:
        via_http = timed(lambda: http_call(http, "search_image", [upload(http, Path(path)), 10, None]))
        via_http_text = timed(lambda: http_call(http, "search_text", ["red dress", 10, None]))
    report = {"startup_s": round(app_server["startup_s"], 2),
              "search_image_k10_gradio_client_ms": round(via_client, 1),
              "search_image_k10_gradio_client_no_download_ms": round(via_client_no_download, 1),
              "search_image_k10_raw_http_ms": round(via_http, 1),
              "search_text_k10_raw_http_ms": round(via_http_text, 1)}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "api-roundtrip.json").write_text(json.dumps(report, indent=2) + "\n")
    print(report)
    assert via_http < 1500 and via_client < 3000, report


