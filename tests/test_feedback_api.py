"""/refine and `dedup` through the real server (`app.py` in a subprocess, tests/helpers.running_app) on the catalog
with one picture under three ids and a product group (tests/conftest.py `dup_index`): through gradio_client and
through Gradio's raw HTTP API, bad input included."""
from __future__ import annotations

import httpx
import pytest

from stylishi.feedback import MAX_IDS
from tests.conftest import DUP_COPIES, DUP_GROUP, DUP_SOURCE
from tests.helpers import api_client, file_data, http_call, running_app, upload_bytes

SAME_PICTURE = {DUP_SOURCE, *DUP_COPIES}


@pytest.fixture(scope="module")
def server(dup_index, tmp_path_factory):
    with running_app(dup_index, tmp_path_factory.mktemp("dup-app"), env={"STYLISHI_RATE_LIMIT": "0"}) as app:
        yield app


@pytest.fixture(scope="module")
def client(server):
    return api_client(server.url, download_files=False)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as h:
        yield h


def picture(dup_index) -> str:
    return str(dup_index.parent / "pictures" / f"{DUP_SOURCE}.png")


# -- dedup ------------------------------------------------------------------------------------------------------------
def test_the_same_picture_under_three_ids_is_one_result_with_its_count(client, dup_index):
    from gradio_client import handle_file

    gallery, results = client.predict(handle_file(picture(dup_index)), 5, api_name="/search_image")
    assert len(results) == 5 and results[0]["id"] in SAME_PICTURE and results[0]["folded"] == 2
    assert len({r["id"] for r in results} & SAME_PICTURE) == 1
    assert "+2 similar" in gallery[0]["caption"].splitlines()[0]
    assert all(r["folded"] == 0 or "similar" in g["caption"] for r, g in zip(results, gallery))


def test_dedup_false_shows_every_copy(client, dup_index):
    from gradio_client import handle_file

    _, results = client.predict(handle_file(picture(dup_index)), 5, dedup=False, api_name="/search_image")
    assert {r["id"] for r in results[:3]} == SAME_PICTURE and all(r["folded"] == 0 for r in results)
    _, results = client.predict(DUP_SOURCE, 50, dedup=False, api_name="/more_like_this")
    assert set(DUP_COPIES) | set(DUP_GROUP) <= {r["id"] for r in results}
    _, results = client.predict(DUP_SOURCE, 50, api_name="/more_like_this")
    ids = {r["id"] for r in results}
    assert not ids & set(DUP_COPIES) and len(ids & set(DUP_GROUP)) == 1  # copies of the item gone; one of the group


def test_dedup_over_raw_http(http, dup_index):
    with open(picture(dup_index), "rb") as f:
        path = upload_bytes(http, "x.png", f.read()).json()[0]
    kind, (_, folded) = http_call(http, "search_image", [file_data(path, "x.png"), 5, None])  # dedup: on by default
    assert kind == "complete" and folded[0]["folded"] == 2
    # search_text(text, k, filters, dedup): dedup by position, as true/false JSON or as text
    kind, (_, plain) = http_call(http, "search_text", ["pink t-shirt", 50, None, "false"])
    assert kind == "complete" and SAME_PICTURE <= {r["id"] for r in plain}
    kind, message = http_call(http, "search_text", ["pink t-shirt", 5, None, "sometimes"])
    assert kind == "error" and "dedup must be true" in str(message)


# -- /refine ----------------------------------------------------------------------------------------------------------
def test_refine_through_gradio_client(client):
    _, start = client.predict("blue dress", 10, api_name="/search_text")
    liked, disliked = [start[0]["id"], start[1]["id"]], [start[2]["id"]]
    gallery, results = client.predict(liked, disliked, 10, api_name="/refine")
    assert len(results) == len(gallery) == 10
    assert not {r["id"] for r in results} & set(liked + disliked)
    assert all(set(r) >= {"rank", "id", "score", "match", "folded", "thumbnail"} for r in results)
    # The same with ids as comma-separated text and as JSON text, and with a filter.
    _, as_text = client.predict(", ".join(liked), ", ".join(disliked), 10, api_name="/refine")
    _, as_json = client.predict(f'["{liked[0]}", "{liked[1]}"]', f'["{disliked[0]}"]', 10, api_name="/refine")
    assert [r["id"] for r in as_text] == [r["id"] for r in as_json] == [r["id"] for r in results]
    _, red = client.predict(liked, None, 5, {"colour": "Red"}, api_name="/refine")  # a colour of this small catalog
    assert red and all(r["colour"] == "Red" for r in red)


def test_refine_over_raw_http(http):
    kind, (_, short) = http_call(http, "refine", [[DUP_SOURCE]])  # the optional arguments omitted: their defaults
    assert kind == "complete" and len(short) == 10
    kind, (gallery, results) = http_call(http, "refine", [[DUP_SOURCE], [], 3, None, True])
    assert kind == "complete" and len(results) == 3 and DUP_SOURCE not in {r["id"] for r in results}
    assert not SAME_PICTURE & {r["id"] for r in results}  # its copies are the liked item under other ids
    kind, (_, plain) = http_call(http, "refine", [[DUP_SOURCE], [], 3, None, False])
    assert kind == "complete" and {r["id"] for r in plain[:2]} == set(DUP_COPIES)


@pytest.mark.parametrize("data, message", [
    ([["no-such-item", "nor-this"], [], 5, None, True], "no item with the ids 'no-such-item', 'nor-this'"),
    ([[], [], 5, None, True], "Nothing to refine with"),
    ([None, None, 5, None, True], "Nothing to refine with"),
    ([[], [DUP_SOURCE], 5, None, True], "With only disliked items"),
    ([{"liked": DUP_SOURCE}, [], 5, None, True], "must be a list of item ids"),
    ([[DUP_SOURCE], 42.5, 5, None, True], "negative_ids"),
    ([[f"id-{i}" for i in range(MAX_IDS + 5)], [], 5, None, True], f"at most {MAX_IDS}"),
    ([[DUP_SOURCE], [DUP_SOURCE], 5, None, True], "both liked and disliked"),
    ([[DUP_SOURCE], [], 500, None, True], "from 1 to 50"),
    ([[DUP_SOURCE], [], 5, {"colour": "Plaid"}, True], "No item has colour"),
])
def test_bad_feedback_gets_a_clear_message_and_the_app_stays_up(http, data, message):
    kind, payload = http_call(http, "refine", data)
    assert kind == "error" and message in str(payload), payload
    kind, (_, results) = http_call(http, "refine", [[DUP_SOURCE], None, 2, None, True])
    assert kind == "complete" and len(results) == 2


def test_bad_feedback_through_gradio_client(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no item with the id 'nope'"):
        client.predict(["nope"], api_name="/refine")
    with pytest.raises(AppError, match="Nothing to refine with"):
        client.predict("", "", api_name="/refine")
