"""The upload janitor (stylishi.privacy): each query's upload goes a few seconds after its query, and a second
upload of the same picture (the same path) keeps it until that upload's own query. Unit tests on a fake clock, then
through the app's real server, whose request guard tells the janitor of each upload.
"""
from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from stylishi.demo import SEEDS, garment_picture
from stylishi.privacy import CLAIM_TTL_S, UploadJanitor
from tests.helpers import file_data, free_port, http_call, upload_bytes


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def janitor(tmp_path, clock=None):
    root = tmp_path / "uploads"
    (root / "abc").mkdir(parents=True)
    path = root / "abc" / "photo.jpg"
    path.write_bytes(b"picture")
    return UploadJanitor(root, after_s=5, clock=clock or Clock()), path


def test_an_upload_goes_after_its_query(tmp_path):
    forget, path = janitor(tmp_path)
    forget.uploaded(str(path))
    assert forget(str(path))
    forget.flush()
    assert not path.exists() and not path.parent.exists() and forget.deleted == 1


def test_a_path_nobody_announced_goes_after_its_query_too(tmp_path):
    forget, path = janitor(tmp_path)
    forget(str(path))
    forget.flush()
    assert not path.exists()


def test_the_same_picture_uploaded_again_waits_for_its_own_query(tmp_path):
    forget, path = janitor(tmp_path)
    forget.uploaded(str(path))
    forget(str(path))  # the first query is done
    forget.uploaded(str(path))  # the same bytes again: the same path, not written again
    forget.flush()  # the first query's deletion comes due
    assert path.exists(), "deleted while a second upload of it still awaited its query"
    forget(str(path))  # the second query is done
    forget.flush()
    assert not path.exists() and forget.deleted == 1


def test_paths_outside_the_upload_folder_are_never_counted_or_deleted(tmp_path):
    forget, path = janitor(tmp_path)
    other = tmp_path / "thumbs.jpg"
    other.write_bytes(b"x")
    forget.uploaded(str(other))
    assert not forget(str(other))
    forget.flush()
    assert other.exists()


def test_an_upload_never_queried_stops_holding_its_path_back(tmp_path):
    clock = Clock()
    forget, path = janitor(tmp_path, clock)
    forget.uploaded(str(path))  # uploaded, never queried (Gradio's cache purge takes its file)
    clock.now += CLAIM_TTL_S + 1
    forget.uploaded(str(path))  # much later, again: the old count is gone
    forget(str(path))
    forget.flush()
    assert not path.exists()


@pytest.fixture(scope="module")
def app(service):
    """The app as main() builds it (request guard included), in this process: its janitor can be asked."""
    from stylishi_ui.page import build_app
    from stylishi_ui.server import launch_options

    demo = build_app(service)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_options(demo, service, requests_per_minute=0))
    try:
        yield demo
    finally:
        demo.close()


@pytest.mark.slow
def test_the_request_guard_tells_the_janitor_of_each_upload(app):
    """The same picture uploaded twice within seconds (one path): the first query's deletion leaves it for the
    second query, whose own deletion takes it. (A load test met the race: a client sending a picture again about
    5 s after its first query read "That image file could not be found".)"""
    buf = io.BytesIO()
    garment_picture("Dresses", "Red", "Solid", seed=SEEDS["heldout"] + 5).save(buf, format="JPEG")
    data, forget = buf.getvalue(), app.upload_janitor
    with httpx.Client(base_url=app.local_url.rstrip("/"), timeout=60) as http:
        path = upload_bytes(http, "same.jpg", data).json()[0]
        assert forget.awaiting(path) == 1
        assert upload_bytes(http, "same.jpg", data).json()[0] == path  # identical bytes, one name: one path
        assert forget.awaiting(path) == 2
        assert http_call(http, "search_image", [file_data(path, "same.jpg"), 3, None])[0] == "complete"
        forget.flush()  # the first query's deletion comes due
        assert Path(path).exists() and forget.awaiting(path) == 1
        kind, payload = http_call(http, "search_image", [file_data(path, "same.jpg"), 3, None])
        assert kind == "complete", payload
        forget.flush()
        assert not Path(path).exists() and forget.awaiting(path) == 0
        refused = http.post("/gradio_api/upload", files=[("files", ("a.jpg", data)), ("files", ("b.jpg", data))])
        assert refused.status_code == 400 and forget.awaiting(path) == 0  # a refused upload hands out nothing
