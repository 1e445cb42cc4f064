"""Shop the look on the page, in a real browser: Debian's Chromium driven by Playwright against the app with the
offline demo index and its detector.

A held-out scene of several garments in a room goes into the "Shop the look" tab: the garments must come back boxed
and labelled on the photo with a row of matches each, the first garment's matches in the results; a click on
another garment's label must turn the results to that garment's. Whether those matches are the right kind is
measured on many scenes in tests/test_look.py; here the page must show what the service found. A screenshot is kept
in test-artifacts/.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from stylishi.scenes import scene
from tests.browsing import BROWSER_MARKS, CAMERA, chromium_page, take_snapshot, write_y4m
from tests.test_look import HELD_OUT

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 30_000
SCENE = HELD_OUT + 3

pytestmark = BROWSER_MARKS


@pytest.fixture
def page():  # one browser per test: Playwright's sync API runs one at a time in a thread
    with chromium_page(1280, 1100, TIMEOUT_MS) as page:
        yield page


def kinds(page) -> list[str]:
    """The article type of each result card (its last caption line reads "article type · colour")."""
    return [c.splitlines()[-1].split(" · ")[0] for c in page.locator("#results .caption-label").all_inner_texts()]


def test_shop_the_look_boxes_the_garments_and_a_click_focuses_one(page, app_url, service, tmp_path):
    sc = scene(SCENE)
    photo = tmp_path / "outfit.jpg"
    sc.image.save(photo, quality=92)
    expected = service.shop_the_look(str(photo), k=3)  # what the page must show, from the same service and file
    assert len(expected.garments) >= 2

    page.goto(app_url)
    page.get_by_role("tab", name="Shop the look").click()
    page.locator("#look-image input[type=file]").set_input_files(str(photo))
    rows = page.locator("#look-rows .look-row")
    rows.nth(len(expected.garments) - 1).wait_for()
    assert rows.count() == len(expected.garments)
    labels = page.locator("#look-rows .look-label").all_inner_texts()
    assert [t.split(" · ")[1] for t in labels] == [g.label for g in expected.garments]
    assert page.locator("#look-rows .look-card img").count() >= len(expected.garments)
    page.locator("#look-boxes img").first.wait_for()
    status = page.locator("#timings")
    status.filter(has_text="garment 1 of").wait_for()
    # The results are the first garment's, the same as the service's own search of its region.
    assert kinds(page)[:3] == [r.article_type for r in expected.garments[0].response.results], kinds(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "shop-the-look.png"), full_page=True)

    # A click on the second garment's label (the annotated image's legend) focuses the search on it.
    second = expected.garments[1]
    page.locator("#look-boxes").get_by_text(labels[1], exact=True).click()
    status.filter(has_text="garment 2 of").wait_for()
    assert second.label in status.inner_text()
    assert kinds(page)[:3] == [r.article_type for r in second.response.results], kinds(page)


def test_shop_the_look_from_the_webcam(app_url, service, tmp_path):
    """Chromium's fake camera films the held-out outfit (the 320×240 scene filling a 640×480 frame); a snapshot in
    the Shop the look tab finds the garments the service finds in that frame."""
    sc = scene(SCENE)
    clip = write_y4m(tmp_path / "outfit.y4m", [sc.image])
    frame = sc.image.resize((640, 480))
    expected = [g.label for g in service.shop_the_look(frame, k=3).garments]
    assert len(expected) >= 2
    with chromium_page(1280, 1100, TIMEOUT_MS, args=CAMERA + [f"--use-file-for-fake-video-capture={clip}"]) as page:
        page.goto(app_url)
        page.get_by_role("tab", name="Shop the look").click()
        take_snapshot(page, "#look-image")
        page.locator("#timings").filter(has_text="garment 1 of").wait_for()
        labels = [t.split(" · ")[1] for t in page.locator("#look-rows .look-label").all_inner_texts()]
        assert page.locator("#look-boxes img").first.is_visible()
    assert sorted(labels) == sorted(expected), (labels, expected)
