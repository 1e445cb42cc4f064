"""👍 / 👎 and "Start over" on the page, in Debian's Chromium driven by Playwright (issue 11, part 4), against the app
served in this process with the offline demo index."""
from __future__ import annotations

import pytest

from tests.browsing import BROWSER_MARKS, chromium_page

TIMEOUT_MS = 30_000

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_url):
    with chromium_page(1280, 900, TIMEOUT_MS) as page:
        yield page


def captions(page) -> list[str]:
    return page.locator("#results .caption-label").all_inner_texts()


def wait_for_status(page, contains: str, previous: str):
    page.locator("#timings").filter(has_not_text=previous).filter(has_text=contains).wait_for()


def test_thumbs_refine_the_results_and_start_over_brings_them_back(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Describe").click()
    page.locator("#text-query textarea, #text-query input").first.fill("blue dress")
    page.locator("#text-search").click()
    page.locator("#timings").filter(has_text="results for the text search").wait_for()
    first = captions(page)
    assert len(first) == 10 and not page.locator("#feedback-row").is_visible()

    # 👍 on the second card: the results change at once, the liked card is not among them, the line counts it.
    liked_name = first[1].split("\n")[1]
    page.locator("#results .thumbnail-item").nth(1).click()
    page.locator("#selected").filter(has_text=liked_name).wait_for()
    before = page.locator("#timings").inner_text()
    page.locator("#like").click()
    wait_for_status(page, "results for the refined search", before)
    page.locator("#feedback").filter(has_text="1 liked · 👎 0 disliked").wait_for()
    refined = captions(page)
    assert len(refined) == 10 and refined != first

    # 👎 on the first card of the refined results: counted too, and the results change again.
    page.locator("#results .thumbnail-item").first.click()
    page.locator("#dislike").click()
    page.locator("#feedback").filter(has_text="1 liked · 👎 1 disliked").wait_for()
    assert captions(page) != refined

    # Start over: the first results again, the feedback gone.
    before = page.locator("#timings").inner_text()
    page.locator("#start-over").click()
    wait_for_status(page, "results for the text search", before)
    page.locator("#feedback-row").wait_for(state="hidden")
    assert captions(page) == first
