"""What the browser tests share: Debian's Chromium, its quiet flags, their marks, the page served in-process, and
Chromium's fake camera (a y4m clip, a snapshot taken with it)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

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
def chromium_page(width: int = 1280, height: int = 1000, timeout_ms: int = 20_000, args: list[str] = ()) -> Iterator:
    """One page of Debian's Chromium (headless, quiet flags, and `args`), driven by Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=QUIET + list(args))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


# -- the fake camera: Chromium's own, fed a y4m clip -------------------------------------------------------------
CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def write_y4m(path: Path, pictures: list[Image.Image], frames_each: int = 10, fps: int = 10) -> Path:
    """A 640×480 4:2:0 clip (BT.601 limited range) showing each picture for frames_each frames.

    Each picture is scaled to fit the frame and centred (a square one to 480×480: the CLIP processor resizes the
    short side and centre-crops, so the model sees the catalog picture itself; a 4:3 one fills the frame). Not
    mirrored: the app does not mirror the webcam.
    """
    w, h = 640, 480
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for picture in pictures:
            frame = Image.new("RGB", (w, h), (250, 250, 250))
            scale = min(w / picture.width, h / picture.height)
            size = (round(picture.width * scale), round(picture.height * scale))
            frame.paste(picture.convert("RGB").resize(size, Image.Resampling.LANCZOS),
                        ((w - size[0]) // 2, (h - size[1]) // 2))
            rgb = np.asarray(frame, dtype=np.float32)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
            u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
            v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
            half = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
            planes = b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in (y, half(u), half(v)))
            for _ in range(frames_each):
                f.write(b"FRAME\n" + planes)
    return path


def take_snapshot(scope, component: str = "#query-image"):
    image = scope.locator(component)
    image.get_by_role("button", name="Capture from camera").click()
    image.get_by_role("button", name="Click to Access Webcam").click()
    image.locator("video[data-testid=webcam-video]").wait_for()
    scope.locator(f"{component} video[data-testid=webcam-video]").evaluate(
        "v => new Promise(ok => { const go = () => v.readyState >= 2 ? ok() : setTimeout(go, 50); go(); })")
    image.get_by_role("button", name="capture photo").click()
