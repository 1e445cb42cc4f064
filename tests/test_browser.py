"""The page in a real browser: Debian's Chromium driven by Playwright, against the app served on 127.0.0.1 with the
offline demo index. The webcam is Chromium's fake camera fed a y4m clip of a catalog item.

Screenshots of the results page (desktop and phone) are kept in test-artifacts/ as artifacts.
Needs /usr/bin/chromium (`apt-get install -y chromium`); never `playwright install`.
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.browsing import BROWSER_MARKS, CAMERA, CHROMIUM, QUIET, take_snapshot, write_y4m
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
# A cap: asymmetric, and its mirror image finds another cap first, so a mirrored capture would fail the test.
CAM_ITEM, CAM_NAME = "demo-1170", "Blue cap"
LIVE_ITEMS = ("demo-0290", "demo-0230")  # the live clip shows one, then the other: the results must follow
UPLOAD_ITEM, UPLOAD_NAME = "demo-0042", "Pink polka dot t-shirt"
TIMEOUT_MS = 20_000

pytestmark = BROWSER_MARKS


# -- servers --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_site(app_url, tmp_path_factory):
    """A static site on another port that embeds the app: an iframe page and a <gradio-app> page."""
    import httpx

    root = tmp_path_factory.mktemp("site")
    bundle = re.search(r"assets/index-[\w-]+\.js", httpx.get(app_url + "/", timeout=10).text).group(0)
    (root / "iframe.html").write_text(
        "<!doctype html><html><body><h1>Our shop</h1>"
        f'<iframe id="app" src="{app_url}/" allow="camera; clipboard-read; clipboard-write" '
        'style="width:100%;height:1400px;border:0"></iframe></body></html>')
    (root / "component.html").write_text(
        f'<!doctype html><html><head><script type="module" src="{app_url}/{bundle}"></script></head>'
        f'<body><h1>Our shop</h1><gradio-app src="{app_url}/"></gradio-app></body></html>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # quiet
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


# -- browsers ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def clips(demo_index, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("camera")
    pic = lambda item: Image.open(demo_index / "catalog_images" / f"{item}.png")  # noqa: E731
    return {"still": write_y4m(folder / "still.y4m", [pic(CAM_ITEM)]),
            "moving": write_y4m(folder / "moving.y4m", [pic(i) for i in LIVE_ITEMS], frames_each=15)}


def _browser(playwright, clip: Path):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=QUIET + CAMERA + [f"--use-file-for-fake-video-capture={clip}"])


@pytest.fixture(scope="module")
def browser(playwright, clips):
    """Chromium whose camera shows the catalog picture of CAM_ITEM."""
    b = _browser(playwright, clips["still"])
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def open_app(page, url: str):
    page.goto(url)
    page.wait_for_selector("#query-image")
    return page


def upload_picture(demo_index) -> str:
    return str(demo_index / "catalog_images" / f"{UPLOAD_ITEM}.png")


def captions(scope) -> list[str]:
    return scope.locator("#results .caption-label").all_inner_texts()


def wait_for_results(scope, first_name: str | None = None, previous_status: str | None = None) -> list[str]:
    """Wait until the gallery shows results (whose first is `first_name`, after `previous_status` changed)."""
    status = scope.locator("#timings")
    if previous_status is not None:
        status.filter(has_not_text=previous_status).wait_for()
    status.filter(has_text="results for").wait_for()
    first = scope.locator("#results .caption-label").first
    first.wait_for()
    if first_name:
        first.filter(has_text=first_name).wait_for()
    return captions(scope)


def settle(page):
    """Results drawn: no progress overlay, every thumbnail loaded (else screenshots show faded cards)."""
    page.wait_for_function("""() => {
        const t = document.querySelector('#results [data-testid=status-tracker]');
        const imgs = [...document.querySelectorAll('#results img')];
        imgs.forEach(i => { i.loading = 'eager'; });  // lazy cards below a phone's fold load for the full-page shot
        return (!t || t.classList.contains('hide')) && imgs.length > 0
            && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""")


# -- the tests --------------------------------------------------------------------------------------------------------
def test_first_screen(page, app_url):
    open_app(page, app_url)
    assert page.title().startswith("StyliShi")
    assert page.locator("#timings").inner_text().startswith("Upload a photo")
    assert page.locator("#notice").count() == 0 or not page.locator("#notice").is_visible()
    page.locator("#examples .thumbnail-item img").nth(7).wait_for()  # data/examples + catalog items, at /media/...
    assert page.locator("#examples .thumbnail-item").count() >= 8
    for tab in ("Photo", "Live camera", "Describe"):
        assert page.get_by_role("tab", name=tab).is_visible()
    assert not page.locator("#more-like-this").is_visible()


def test_upload_flow(page, app_url, demo_index):
    open_app(page, app_url)
    page.locator("#query-image input[type=file]").set_input_files(upload_picture(demo_index))
    found = wait_for_results(page, UPLOAD_NAME)
    assert len(found) == 10
    assert re.match(rf"#1 · [\d.]+% match\n{UPLOAD_NAME}", found[0])  # the calibrated % match
    assert all(re.match(rf"#{i} · [\d.]+% match\n", c) for i, c in enumerate(found, start=1))
    status = page.locator("#timings").inner_text()
    assert re.search(r"10 results for the photo search among 1,200 products .*embed [\d.]+\s?ms.*total [\d.]+\s?ms",
                     status)


def test_bad_file_shows_the_core_message_and_the_page_keeps_working(page, app_url, demo_index, tmp_path):
    open_app(page, app_url)
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"definitely not a picture" * 20)
    page.locator("#query-image input[type=file]").set_input_files(str(bad))
    page.get_by_text("This file is not a picture we can read").first.wait_for()
    page.locator("#query-image").get_by_role("button", name="Remove Image").click()
    page.locator("#query-image input[type=file]").set_input_files(upload_picture(demo_index))
    wait_for_results(page, UPLOAD_NAME)


def test_clicking_an_example(page, app_url):
    open_app(page, app_url)
    example = page.locator("#examples .thumbnail-item").first
    example.click()
    found = wait_for_results(page)
    assert len(found) == 10 and "photo search" in page.locator("#timings").inner_text()
    src = page.locator("#examples .thumbnail-item img").first.get_attribute("src")
    assert "/media/examples/" in src and "/work/" not in src and "/tmp/" not in src  # no server folder in the page


def test_text_search_more_like_this_and_filters(page, app_url):
    open_app(page, app_url)
    page.get_by_role("tab", name="Describe").click()
    page.locator("#text-query textarea, #text-query input").first.fill("red floral summer dress")
    page.locator("#text-search").click()
    found = wait_for_results(page)
    assert len(found) == 10 and "text search" in page.locator("#timings").inner_text()

    # Click a result: "More like this" searches with that item's stored vector (the item itself left out).
    third = found[2].split("\n")[1]
    page.locator("#results .thumbnail-item").nth(2).click()
    page.locator("#selected").filter(has_text=third).wait_for()
    before = page.locator("#timings").inner_text()
    page.locator("#more-like-this").click()
    found = wait_for_results(page, previous_status=before)
    assert len(found) == 10 and "“more like this”" in page.locator("#timings").inner_text()

    # A colour filter reruns the same query and narrows it.
    page.get_by_text("Filters and number of results").click()
    before = page.locator("#timings").inner_text()
    page.locator("#filter-colour input").click()
    page.get_by_role("option", name="Green", exact=True).click()
    found = wait_for_results(page, previous_status=before)
    assert "filtered by colour Green" in page.locator("#timings").inner_text()
    assert found and all(c.endswith("· Green") for c in found), found


def test_webcam_snapshot_finds_the_item_in_front_of_the_camera(page, app_url):
    open_app(page, app_url)
    take_snapshot(page)
    found = wait_for_results(page, CAM_NAME)
    assert re.match(rf"#1 · [\d.]+% match\n{CAM_NAME}", found[0]), found[:3]
    # What the shopper reads under the first results: the right article type and colour (the trained demo model).
    kinds = [c.strip().splitlines()[-1] for c in found[:5]]
    assert kinds[:2] == ["Caps · Blue"] * 2 and all(k.endswith("· Blue") for k in kinds), found[:5]


def test_live_mode_follows_the_camera(playwright, clips, app_url, service):
    names = [service.catalog.items.set_index("id").at[i, "name"] for i in LIVE_ITEMS]
    browser = _browser(playwright, clips["moving"])
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        open_app(page, app_url)
        page.get_by_role("tab", name="Live camera").click()
        live = page.locator("#live-cam")
        live.get_by_role("button", name="Click to Access Webcam").click()
        live.locator("video[data-testid=webcam-video]").wait_for()
        live.get_by_role("button", name="capture photo").click()  # labelled "Record": starts streaming
        first = wait_for_results(page)[0]
        assert "live camera search" in page.locator("#timings").inner_text()
        shown = next(n for n in names if f"\n{n}\n" in first + "\n")  # the clip's first or second picture ...
        other = names[1 - names.index(shown)]
        page.locator("#results .caption-label").first.filter(has_text=other).wait_for()  # ... then the other
        assert re.match(rf"#1 · [\d.]+% match\n{other}", captions(page)[0])
        live.get_by_role("button", name="capture photo").click()  # "Stop"
    finally:
        browser.close()


def test_app_in_an_iframe_on_another_site(page, other_site, demo_index):
    page.goto(other_site + "/iframe.html")
    frame = page.frame_locator("iframe#app")
    frame.locator("#query-image").wait_for()
    frame.locator("#query-image input[type=file]").set_input_files(
        upload_picture(demo_index))
    wait_for_results(frame, UPLOAD_NAME)
    frame.locator("#query-image").get_by_role("button", name="Remove Image").click()
    take_snapshot(frame)  # the camera works inside the iframe (allow="camera")
    wait_for_results(frame, CAM_NAME, previous_status=frame.locator("#timings").inner_text())


def test_app_as_a_web_component_on_another_site(page, other_site, demo_index):
    page.goto(other_site + "/component.html")
    page.locator("gradio-app #query-image").wait_for()
    page.locator("gradio-app #query-image input[type=file]").set_input_files(
        upload_picture(demo_index))
    wait_for_results(page.locator("gradio-app"), UPLOAD_NAME)


def test_results_page_screenshots(browser, app_url, demo_index):
    """Artifacts: the results page on a desktop and on a phone (which must not scroll sideways)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport, full in (("results-desktop.png", {"width": 1280, "height": 900}, False),
                                 ("results-phone.png", {"width": 390, "height": 844}, True)):
        context = browser.new_context(viewport=viewport, device_scale_factor=1,
                                      is_mobile=viewport["width"] < 500, has_touch=viewport["width"] < 500)
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            open_app(page, app_url)
            page.locator("#query-image input[type=file]").set_input_files(
                upload_picture(demo_index))
            wait_for_results(page, UPLOAD_NAME)
            settle(page)
            page.evaluate("window.scrollTo(0, 0)")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
            page.screenshot(path=str(ARTIFACTS / name), full_page=full)
            assert (ARTIFACTS / name).stat().st_size > 10_000
        finally:
            context.close()
