"""What the browser tests share: Debian's Chromium, its quiet flags, their marks, and the page served in-process."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
QUIET = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)"),
]


@contextmanager
def serve_page(service) -> Iterator[str]:
    """The app as main() builds it, launched in this process on 127.0.0.1; yields its URL.
    No rate limit: the browser, the iframe page and the web component all come from 127.0.0.1."""
    from stylishi_ui.page import build_app
    from stylishi_ui.server import launch_options

    demo = build_app(service)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_options(demo, service, requests_per_minute=0))
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()


@contextmanager
def chromium_page(width: int = 1280, height: int = 1000, timeout_ms: int = 20_000) -> Iterator:
    """One page of Debian's Chromium (headless, quiet flags), driven by Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=QUIET)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()
