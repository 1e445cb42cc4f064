"""Pick a region and "like this, but …" on the page, in a real browser: Debian's Chromium driven by Playwright
against the app on 127.0.0.1 with the offline demo index.

A held-out scene shows a red garment on the left and a blue one on the right; dragging a box over one of them
must turn the results to that garment. Typing "in <colour>" next to a photo must turn them to that colour, and the
status line must say how the words were read. A screenshot of the dragged region is kept in test-artifacts/.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from stylishi.demo import SEEDS, garment_picture
from tests.browsing import BROWSER_MARKS, CHROMIUM, QUIET

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 20_000
LEFT, RIGHT = ("Dresses", "Red", "Solid"), ("Caps", "Blue", "Solid")

pytestmark = BROWSER_MARKS


def scene(path: Path) -> Path:
    """Two held-out garments side by side (never catalog pictures): a red dress left, a blue cap right."""
    seed = SEEDS["heldout"] + 700_000
    canvas = Image.new("RGB", (448, 224), (245, 245, 245))
    canvas.paste(garment_picture(*LEFT, seed=seed), (0, 0))
    canvas.paste(garment_picture(*RIGHT, seed=seed + 1), (224, 0))
    canvas.save(path)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=QUIET)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def colours(page) -> list[str]:
    """The colour of each result card (its last caption line reads "article type · colour")."""
    return [c.splitlines()[-1].split(" · ")[-1] for c in page.locator("#results .caption-label").all_inner_texts()]


def wait_for_new_results(page, before: str) -> str:
    status = page.locator("#timings")
    status.filter(has_not_text=before).filter(has_text="results for").wait_for()
    page.locator("#results .caption-label").first.wait_for()
    return status.inner_text()


def drag(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag the mouse over the photo from (x0, y0) to (x1, y1), as fractions of the picture drawn on screen."""
    img = page.locator("#query-image img").first
    img.wait_for()
    page.wait_for_function("() => { const i = document.querySelector('#query-image img'); "
                           "return i && i.complete && i.naturalWidth > 0; }")
    r = img.evaluate("""i => { const b = i.getBoundingClientRect();
        const s = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight);
        const w = i.naturalWidth * s, h = i.naturalHeight * s;
        return {left: b.left + (b.width - w) / 2, top: b.top + (b.height - h) / 2, width: w, height: h}; }""")
    at = lambda fx, fy: (r["left"] + fx * r["width"], r["top"] + fy * r["height"])  # noqa: E731
    page.mouse.move(*at(x0, y0))
    page.mouse.down()
    for step in range(1, 6):
        t = step / 5
        page.mouse.move(*at(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
    page.mouse.up()


def test_dragging_a_region_searches_that_garment(page, app_url, tmp_path):
    page.goto(app_url)
    page.wait_for_selector("#query-image")
    page.locator("#query-image input[type=file]").set_input_files(str(scene(tmp_path / "scene.png")))
    whole_status = wait_for_new_results(page, "Upload a photo")
    assert "region" not in whole_status

    drag(page, 0.55, 0.05, 0.97, 0.95)  # the blue cap
    right_status = wait_for_new_results(page, whole_status)
    right = colours(page)
    assert "region 55–97 % across" in right_status, right_status
    assert page.locator("#query-image .region-box").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "region-dragged.png"), full_page=True)
    assert sum(c == RIGHT[1] for c in right[:5]) >= 4, right

    drag(page, 0.03, 0.05, 0.45, 0.95)  # the red dress
    wait_for_new_results(page, right_status)
    left = colours(page)
    assert sum(c == LEFT[1] for c in left[:5]) >= 4, left

    before = page.locator("#timings").inner_text()
    page.locator("#region-clear").click()  # back to the whole photo
    assert "region" not in wait_for_new_results(page, before)
    assert not page.locator("#query-image .region-box").is_visible()


def test_like_this_but_in_a_colour(page, app_url, tmp_path):
    page.goto(app_url)
    page.wait_for_selector("#query-image")
    photo = tmp_path / "dress.png"
    garment_picture(*LEFT, seed=SEEDS["heldout"] + 700_100).save(photo)
    page.locator("#query-image input[type=file]").set_input_files(str(photo))
    before = wait_for_new_results(page, "Upload a photo")
    assert sum(c == LEFT[1] for c in colours(page)[:5]) >= 3

    page.locator("#modifier input, #modifier textarea").first.fill("in green with a collar")
    page.locator("#modifier input, #modifier textarea").first.press("Enter")
    status = wait_for_new_results(page, before)
    assert "colour = Green (filter)" in status and "rest: 'with a collar' at weight 0.3" in status, status
    assert set(colours(page)) == {"Green"}, colours(page)

