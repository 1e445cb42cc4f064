"""The contract between StyliShi and Gradio's private names (stylishi_ui/gradio_compat.py, the only module that uses
them). Each check names what moved, so an upgrade of Gradio fails here, loudly, and says where to look.

One tiny Blocks built with the compat helpers, launched on loopback and called over HTTP as the app is.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import gradio as gr  # at module level: the handler's `gr.Request` hint must resolve
import httpx
import pytest

from tests.helpers import free_port, http_call

ROOT = Path(__file__).resolve().parents[1]
WHERE = "update stylishi_ui/gradio_compat.py::{fn} (written for gradio {version})"
# Names reached through Gradio objects or modules that are not part of its documented API.
PRIVATE = {"preprocess", "api_info_as_input", "route_utils", "get_upload_folder", "upload_file_set", "temp_file_sets",
           "temp_files", "state_holder", "session_data", "time_last_used", "get_root_url", "_queue"}


def moved(fn: str) -> str:
    from stylishi_ui import gradio_compat

    return "Gradio " + gr.__version__ + " changed it: " + WHERE.format(fn=fn, version=gradio_compat.GRADIO_VERSION)


def test_no_other_module_touches_gradio_private_names():
    for path in [ROOT / "app.py", *sorted((ROOT / "stylishi_ui").glob("*.py"))]:
        if path.name == "gradio_compat.py":
            continue
        tree = ast.parse(path.read_text())
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("gradio")
                 for a in n.names}
        used |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not used & PRIVATE, f"{path.name} uses {used & PRIVATE}: move it into stylishi_ui/gradio_compat.py"
    assert not list((ROOT / "stylishi").rglob("*.py")) or all(
        "import gradio" not in p.read_text() for p in (ROOT / "stylishi").rglob("*.py")), "the core imports gradio"


@pytest.fixture(scope="module")
def tiny():
    """A Blocks with an Image whose preprocess is ours, a JSON input with our schema, an endpoint with no trigger,
    root_url and drop_session inside the call, and purge_safely on its sets."""
    from stylishi_ui import gradio_compat as compat

    seen = {}
    with gr.Blocks(analytics_enabled=False, delete_cache=(60, 120)) as demo:
        image = compat.override_preprocess(gr.Image(type="filepath"), lambda payload: ("ours", payload and payload.path))
        filters = compat.override_input_schema(gr.JSON(label="filters"), {"type": "object", "description": "ours"})
        out = gr.JSON()

        def fn(picture, f, request: gr.Request):
            seen["picture"], seen["root"] = picture, compat.root_url(request)
            seen["sessions_before"] = compat.session_count(demo)
            compat.drop_session(demo, request.session_hash)
            seen["sessions_after"] = compat.session_count(demo)
            return {"ok": True}

        compat.api_endpoint(fn, [image, filters], [out], "probe")
    compat.purge_safely(demo)
    demo.queue(api_open=False)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield demo, f"http://127.0.0.1:{port}", seen
    demo.close()


def test_preprocess_override_root_url_and_sessions(tiny):
    from stylishi_ui import gradio_compat as compat

    demo, url, seen = tiny
    with httpx.Client(base_url=url, timeout=30) as http:
        path = http.post("/gradio_api/upload", files={"files": ("x.png", b"\x89PNG", "image/png")}).json()[0]
        kind, payload = http_call(http, "probe", [{"path": path, "meta": {"_type": "gradio.FileData"}}, None])
    assert kind == "complete", ("an endpoint with no trigger (gr.on([]))", moved("api_endpoint"), payload)
    assert seen["picture"] == ["ours", path] or seen["picture"] == ("ours", path), moved("override_preprocess")
    assert seen["root"] == url, moved("root_url")
    assert seen["sessions_before"] >= 1 and seen["sessions_after"] == seen["sessions_before"] - 1, moved("drop_session")
    assert Path(path).resolve().is_relative_to(compat.upload_folder()), moved("upload_folder")
    info = httpx.get(url + "/gradio_api/info", timeout=10).json()
    params = info["named_endpoints"]["/probe"]["parameters"]
    assert params[1]["type"] == {"type": "object", "description": "ours"}, moved("override_input_schema")


def test_purge_sets_are_snapshot_sets_and_gradio_still_uses_them(tiny):
    from gradio.route_utils import delete_files_created_by_app

    from stylishi_ui import gradio_compat as compat

    demo, _, _ = tiny
    assert isinstance(demo.upload_file_set, compat._SnapshotSet), moved("purge_safely")
    assert all(isinstance(s, compat._SnapshotSet) for s in demo.temp_file_sets), moved("purge_safely")
    assert any(s is demo.upload_file_set for s in demo.temp_file_sets), moved("purge_safely")
    assert "temp_file_sets" in inspect.getsource(delete_files_created_by_app), moved("purge_safely")
    demo.queue(max_size=7)
    assert compat.queue_max_size(demo) == 7, moved("queue_max_size")
    compat.untrack_upload(demo, "/nowhere/x.png")  # a set with discard()


def test_the_private_functions_keep_their_signatures():
    from gradio import route_utils, utils

    assert list(inspect.signature(route_utils.get_root_url).parameters) == ["request", "route_path", "root_path"], \
        moved("root_url")
    assert callable(utils.get_upload_folder), moved("upload_folder")
