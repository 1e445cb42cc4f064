"""Pick a region on a webcam snapshot, in a real browser: Chromium's fake camera films the held-out two-garment
scene of tests/test_browser_region.py (a red dress left, a blue cap right); after the snapshot, dragging a box over
one garment turns the results to it, as on an uploaded photo (the same element takes both).
"""
from __future__ import annotations

from PIL import Image

from tests.browsing import BROWSER_MARKS, CAMERA, chromium_page, take_snapshot, write_y4m
from tests.test_browser_region import LEFT, RIGHT, colours, drag, scene, wait_for_new_results

TIMEOUT_MS = 20_000

pytestmark = BROWSER_MARKS


def test_dragging_a_region_on_a_webcam_snapshot(app_url, tmp_path):
    clip = write_y4m(tmp_path / "scene.y4m", [Image.open(scene(tmp_path / "scene.png"))])
    with chromium_page(1280, 1000, TIMEOUT_MS, args=CAMERA + [f"--use-file-for-fake-video-capture={clip}"]) as page:
        page.goto(app_url)
        page.wait_for_selector("#query-image")
        take_snapshot(page)
        whole_status = wait_for_new_results(page, "Upload a photo")
        assert "region" not in whole_status

        # the 448×224 scene fills the 640×480 frame's width: its garments lie between 1/6 and 5/6 of its height
        drag(page, 0.55, 0.2, 0.97, 0.8)  # the blue cap
        right_status = wait_for_new_results(page, whole_status)
        assert "region 55–97 % across" in right_status, right_status
        assert page.locator("#query-image .region-box").is_visible()
        right = colours(page)
        assert sum(c == RIGHT[1] for c in right[:5]) >= 4, right

        drag(page, 0.03, 0.2, 0.45, 0.8)  # the red dress
        wait_for_new_results(page, right_status)
        left = colours(page)
        assert sum(c == LEFT[1] for c in left[:5]) >= 4, left
