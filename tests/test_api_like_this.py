"""Pick a region and "like this, but …" through the API of the real app (`python app.py --index <demo>` in a
subprocess): `/search_image(image, k, filters, box, text, text_weight)` called through `gradio_client` and
through Gradio's raw HTTP API, as a program on another machine would. Bad boxes and words get a clear message and
the app stays up."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from stylishi.demo import SEEDS, garment_picture
from tests.helpers import api_client, http_call, running_app


@pytest.fixture(scope="module")
def app(demo_index, tmp_path_factory):
    with running_app(demo_index, tmp_path_factory.mktemp("app"), env={"STYLISHI_RATE_LIMIT": "0"}) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return api_client(app.url, download_files=False)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """A held-out red dress (left) and blue cap (right), side by side."""
    seed = SEEDS["heldout"] + 730_000
    canvas = Image.new("RGB", (448, 224), (245, 245, 245))
    canvas.paste(garment_picture("Dresses", "Red", "Solid", seed=seed), (0, 0))
    canvas.paste(garment_picture("Caps", "Blue", "Solid", seed=seed + 1), (224, 0))
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    canvas.save(path)
    return path


def colours(results) -> list[str]:
    return [r["colour"] for r in results]


def test_the_endpoint_documents_box_text_and_weight(client):
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search_image"]
    params = {p["parameter_name"]: p for p in endpoint["parameters"]}
    assert [*params] == ["image", "k", "filters", "box", "text", "text_weight", "dedup"]
    assert params["box"]["parameter_default"] is None and params["text_weight"]["parameter_default"] == 0.3


def test_a_box_searches_that_region_through_gradio_client(client, scene):
    from gradio_client import handle_file

    _, right = client.predict(handle_file(str(scene)), 5, None, [0.5, 0, 1, 1], api_name="/search_image")
    _, left = client.predict(handle_file(str(scene)), 5, None, "[0, 0, 0.5, 1]", api_name="/search_image")
    assert sum(c == "Blue" for c in colours(right)) >= 4, colours(right)
    assert sum(c == "Red" for c in colours(left)) >= 4, colours(left)
    _, whole = client.predict(handle_file(str(scene)), 5, None, None, api_name="/search_image")
    assert len(whole) == 5


def test_like_this_but_through_gradio_client(client, scene):
    from gradio_client import handle_file

    _, green = client.predict(handle_file(str(scene)), 10, None, [0, 0, 0.5, 1], "like this, but in green",
                              api_name="/search_image")
    assert set(colours(green)) == {"Green"}
    _, not_red = client.predict(handle_file(str(scene)), 10, {"gender": "Women"}, [0, 0, 0.5, 1], "not red", 0.5,
                                api_name="/search_image")
    assert "Red" not in colours(not_red) and len(not_red) == 10
    _, plain = client.predict(handle_file(str(scene)), 4, None, None, "", api_name="/search_image")
    assert len(plain) == 4


def upload(http: httpx.Client, path: Path) -> dict:
    with open(path, "rb") as f:
        response = http.post("/gradio_api/upload", files={"files": (path.name, f, "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def test_raw_http_box_words_and_bad_input(app, scene):
    with httpx.Client(base_url=app.url, timeout=60) as http:
        call = lambda *args: http_call(http, "search_image", [upload(http, scene), *args])  # noqa: E731
        kind, (gallery, results) = call(6, None, [0.5, 0, 1, 1], "in yellow", 0.3)
        assert kind == "complete" and len(gallery) == 6 and set(colours(results)) == {"Yellow"}
        kind, (_, results) = call(3, None)  # older clients: box, text and weight left out
        assert kind == "complete" and len(results) == 3
        for args, says in [((5, None, [0.6, 0, 0.2, 1]), "inverted"), ((5, None, [0, 0, 2, 1]), "outside"),
                           ((5, None, [0, 0, 1]), "four numbers"), ((5, None, "[0, 0, 1, nope]"), "not JSON"),
                           ((5, None, [0.5, 0.5, 0.51, 0.51]), "too small"),
                           ((5, None, None, "x" * 2000), "at most 500"),
                           ((5, None, None, "in blue", 3), "text_weight"),
                           ((5, None, None, "in blue", "heavy"), "text_weight")]:
            kind, message = call(*args)
            assert kind == "error" and says in json.dumps(message), (args, message)
        kind, (_, results) = call(2, None, None, "with a collar")  # the app is still up
        assert kind == "complete" and len(results) == 2
    assert app.proc.poll() is None
    assert "x" * 50 not in app.log_text() and "collar" not in app.log_text()  # typed words never reach the log


def test_the_rest_route_passes_box_text_and_weight_on(app, scene):
    """POST /api/v1/search (stylishi_ui.rest) with the same optional fields as the Gradio endpoint."""
    from stylishi_ui.rest import PATH

    with open(scene, "rb") as f:
        picture = f.read()
    form = {"k": (None, "5"), "box": (None, "[0.5, 0, 1, 1]"), "text": (None, "in pink"),
            "text_weight": (None, "0.2"), "image": ("scene.png", picture, "image/png")}
    response = httpx.post(app.url + PATH, files=form, timeout=60)
    assert response.status_code == 200, response.text
    assert set(colours(response.json())) == {"Pink"}
    bad = httpx.post(app.url + PATH, files={**form, "box": (None, "[1, 0, 0, 1]")}, timeout=60)
    assert bad.status_code == 400 and "inverted" in bad.json()["error"]
