"""The API for programs and agents: named endpoints (search by picture, text, item; refine by 👍/👎; shop the look)
(MCP tools with --mcp), each answering a gallery and a JSON list of matches (shop the look: a JSON list of
garments). After each call its upload and its Gradio session are let go: a program keeps no state here."""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from stylishi.dedup import parse_flag
from stylishi.feedback import EXAMPLE_IDS, MAX_IDS
from stylishi.filters import EXAMPLE, parse_filters
from stylishi.modifiers import DEFAULT_WEIGHT

from . import cards, gradio_compat as compat
from .errors import run

DEFAULT_K = 10
API_NAMES = ("search_image", "search_text", "more_like_this", "refine", "shop_the_look")
LOOK_K = 5  # results per garment by default


def _k(k: Any) -> Any:
    """The API's k: omitted (null) means the default; anything else goes to the core, which explains a bad one."""
    return DEFAULT_K if k is None or k == "" else k


FILTERS_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"},
                                                             {"type": "array", "items": {"type": "string"}}]}},
        {"type": "string"},
        {"type": "null"},
    ],
    "description": f"e.g. {EXAMPLE}, or that object as JSON text",
}
BOX_SCHEMA = {
    "anyOf": [{"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}, {"type": "string"},
              {"type": "null"}],
    "description": "[x0, y0, x1, y1] as fractions of the picture's width and height (or that list as JSON text); "
                   "null: the whole picture",
}


IMAGE_ARGS = (
    "\n    box: optional region of the picture to search by, [x0, y0, x1, y1] as fractions of its width and height "
    "(left, top, right, bottom), e.g. [0.25, 0.1, 0.75, 0.6]; null searches the whole picture."
    "\n    text: optional words to change what the picture finds (\"like this, but …\"), e.g. 'in blue', 'with "
    "stripes', 'not black', 'for men': words naming a colour, pattern, type or gender of the catalog filter by it "
    "(after 'not', 'no' or 'without' they exclude it); the other words are added to the picture's meaning."
    "\n    text_weight: how much those other words count against the picture, 0 to 1 (default {weight}).")
IDS_SCHEMA = {
    "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}, {"type": "null"}],
    "description": f"item ids, e.g. {EXAMPLE_IDS}, or comma-separated text",
}


def add_api(demo: gr.Blocks, service, *, image_input: Callable[..., gr.Image], gallery: gr.Gallery, media,
            forget, concurrency: int) -> None:
    """The endpoints, on hidden components (inside `with demo:`)."""
    with gr.Column(visible=False):
        api_image = image_input(type="filepath", label="image", sources=["upload"])
        api_text = gr.Textbox(label="text", value=None)
        api_item = gr.Textbox(label="item_id", value=None)
        api_k = compat.override_preprocess(gr.Slider(1, service.limits.max_k, value=DEFAULT_K, step=1, label="k"),
                                           lambda value: value)  # the core explains a bad k
        api_filters = compat.override_input_schema(gr.JSON(label="filters"), FILTERS_SCHEMA)
        api_box = compat.override_input_schema(gr.JSON(label="box"), BOX_SCHEMA)
        api_words = gr.Textbox(label="text", value=None)
        api_weight = compat.override_preprocess(gr.Number(label="text_weight", value=DEFAULT_WEIGHT, minimum=0,
                                                          maximum=1), lambda value: value)  # the core explains
        api_dedup = compat.override_preprocess(gr.Checkbox(value=True, label="dedup"),
                                               lambda value: value)  # the core explains a bad value
        api_liked, api_disliked = (compat.override_preprocess(compat.override_input_schema(gr.JSON(label=label),
                                                                                           IDS_SCHEMA), lambda v: v)
                                   for label in ("positive_ids", "negative_ids"))
        api_results = gr.JSON(label="results")
        api_look = gr.JSON(label="garments")
        api_look_k = compat.override_preprocess(gr.Slider(1, service.limits.max_k, value=LOOK_K, step=1, label="k"),
                                                lambda value: value)

    def api_call(search: Callable, request: gr.Request | None, upload=None):
        try:
            response = run(search)
        finally:
            forget(upload)
            session = getattr(request, "session_hash", None)
            if session:
                forget.later(lambda: compat.drop_session(demo, session))
        url_of = media.url_maker(compat.root_url(request))
        return cards.gallery(response, url_of), cards.results_json(response, url_of)

    def search_image(image, k=DEFAULT_K, filters=None, box=None, text=None, text_weight=DEFAULT_WEIGHT, dedup=True,
                     request: gr.Request = None):
        return api_call(lambda: service.search_image(image, _k(k), parse_filters(filters), box=box, text=text,
                                                     text_weight=text_weight, dedup=parse_flag(dedup)),
                        request, image)

    def search_text(text, k=DEFAULT_K, filters=None, dedup=True, request: gr.Request = None):
        return api_call(lambda: service.search_text(text, _k(k), parse_filters(filters), dedup=parse_flag(dedup)),
                        request)

    def more_like_this(item_id, k=DEFAULT_K, filters=None, dedup=True, request: gr.Request = None):
        return api_call(lambda: service.search_item(item_id, _k(k), parse_filters(filters), dedup=parse_flag(dedup)),
                        request)

    def refine(positive_ids, negative_ids=None, k=DEFAULT_K, filters=None, dedup=True, request: gr.Request = None):
        return api_call(lambda: service.refine(positive_ids, negative_ids, _k(k), parse_filters(filters),
                                               dedup=parse_flag(dedup)), request)

    def shop_the_look(image, k=LOOK_K, request: gr.Request = None):
        try:
            look = run(lambda: service.shop_the_look(image, LOOK_K if k is None or k == "" else k))
        finally:
            forget(image)
            session = getattr(request, "session_hash", None)
            if session:
                forget.later(lambda: compat.drop_session(demo, session))
        return cards.look_json(look, media.url_maker(compat.root_url(request)))

    fields = "; ".join(f"{c} ({', '.join(v[:8])}{', …' if len(v) > 8 else ''})"
                       for c, v in service.filter_values.items()) or "none"
    common = (f"    k: how many results to return, 1 to {service.limits.max_k} (default {DEFAULT_K}).\n"
              f"    filters: optional JSON object narrowing the search, e.g. {EXAMPLE}: values of one field are "
              f"OR-ed, fields AND-ed. Fields: {fields}.\n"
              "    dedup: fold near-duplicates (the same picture, near-identical vectors, one product group) into the "
              "best of them (true, the default), or show every item (false).\n\n"
              "Returns:\n"
              "    A gallery of the matches, and a JSON list of the matches best first, each {rank, id, score (cosine "
              "similarity), match (percent), name, category (the catalog's category, the values the category filter "
              "takes), article_type, colour (\"\" when the catalog has none), thumbnail (URL), folded (how many "
              "near-duplicates this result stands for)}.\n")
    search_image.__doc__ = (f"Find catalog products that look like a picture (a fashion visual search over "
                            f"{len(service.catalog):,} products).\n\nArgs:\n"
                            f"    image: the query picture, a JPEG, PNG or WebP file of at most "
                            f"{service.limits.max_bytes / 1e6:.0f} MB, uploaded to this app first.\n" + common
                            .replace("\n\nReturns:", IMAGE_ARGS.format(weight=DEFAULT_WEIGHT) + "\n\nReturns:", 1))
    search_text.__doc__ = ("Find catalog products matching a description such as 'red floral summer dress'.\n\n"
                           "Args:\n    text: what to look for, in a few words.\n" + common)
    more_like_this.__doc__ = ("Find catalog products similar to a catalog item, by its id (the `id` of a result from "
                              "search_image or search_text). The item itself is left out of the results.\n\nArgs:\n    item_id: the id of a catalog item.\n" + common)

    refine.__doc__ = ("Refine results with feedback: find catalog products like the liked items and unlike the "
                      "disliked ones (Rocchio relevance feedback). The liked and disliked items are not returned.\n\n"
                      "Args:\n"
                      f"    positive_ids: ids of results the shopper likes, a list such as {EXAMPLE_IDS} or "
                      f"comma-separated text (at most {MAX_IDS}).\n"
                      f"    negative_ids: ids of results the shopper dislikes (optional; at most {MAX_IDS}).\n" + common)

    shop_the_look.__doc__ = (
        "Shop the look: find every garment in a photo (bag, bottom, dress, hat, shoes, outer, top) and the catalog "
        "products that look like each one, searched by that garment's region of the photo.\n\nArgs:\n"
        f"    image: the photo, a JPEG, PNG or WebP file of at most {service.limits.max_bytes / 1e6:.0f} MB, "
        "uploaded to this app first.\n"
        f"    k: how many results per garment, 1 to {service.limits.max_k} (default {LOOK_K}).\n\n"
        "Returns:\n"
        "    A JSON list, one entry per garment found, most confident first: {label, score (the detector's "
        "confidence, 0 to 1), box ([x0, y0, x1, y1] as fractions of the photo's width and height), results (the "
        "matches, as search_image returns them)}. An empty list when no garment is found: search_image then "
        "searches the whole photo.\n")

    options = dict(concurrency_limit=concurrency, concurrency_id="search")
    compat.api_endpoint(search_image, [api_image, api_k, api_filters, api_box, api_words, api_weight, api_dedup],
                        [gallery, api_results], "search_image", **options)
    compat.api_endpoint(search_text, [api_text, api_k, api_filters, api_dedup], [gallery, api_results],
                        "search_text", **options)
    compat.api_endpoint(more_like_this, [api_item, api_k, api_filters, api_dedup], [gallery, api_results],
                        "more_like_this", **options)
    compat.api_endpoint(refine, [api_liked, api_disliked, api_k, api_filters, api_dedup], [gallery, api_results],
                        "refine", **options)
    compat.api_endpoint(shop_the_look, [api_image, api_look_k], [api_look], "shop_the_look", **options)
